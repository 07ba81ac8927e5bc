// Browser front end of the ESRGAN job service: plain JS, no build step, no external resources.
// The upload page works as a plain form POST without JS; this script takes the form over to add
// drag-and-drop, upload progress, live job progress, the before/after comparison and recent jobs.
"use strict";

(() => {
  const RECENT_KEY = "esrgan.recentJobs";
  const RECENT_MAX = 20;
  const TERMINAL = new Set(["succeeded", "failed", "canceled"]);
  const POLL_MS = 600;
  const STATUS_TEXT = {
    queued: "Queued", running: "Running", succeeded: "Done", failed: "Failed", canceled: "Canceled",
    expired: "Expired",
  };

  const ANNOUNCE = {
    queued: "Job queued.", running: "Enhancing the image.", succeeded: "Done: the enhanced image is ready to download.",
    failed: "The job failed.", canceled: "The job was canceled.",
  };

  const $ = (selector, root = document) => root.querySelector(selector);

  // Results the page plays in a <video>; animations (GIF, APNG, WebP) play in the <img> comparison.
  const VIDEO_FORMATS = new Set(["mp4", "webm", "mov", "mkv"]);
  const CLIP_OUTPUTS = new Set([...VIDEO_FORMATS, "gif"]);
  // Videos and GIFs: an image format chosen on the form does not apply to them (they keep their kind).
  const isClipFile = (file) => file.type.startsWith("video/") || file.type === "image/gif"
    || /\.(mp4|m4v|mov|mkv|webm|gif)$/i.test(file.name);

  // --- API ------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, code, status) {
      super(message);
      this.code = code;
      this.status = status;
    }
  }

  // The API answers errors as {"error": {"code", "message"}}; show its message as it is.
  function apiError(status, text) {
    try {
      const body = JSON.parse(text);
      if (body && body.error && body.error.message) {
        return new ApiError(body.error.message, body.error.code, status);
      }
      if (body && typeof body.detail === "string") return new ApiError(body.detail, "error", status);
    } catch (_) { /* not JSON: fall through */ }
    return new ApiError(`The server answered ${status}${text ? ": " + text.slice(0, 200) : ""}`, "http", status);
  }

  async function api(path, options = {}) {
    let response;
    try {
      response = await fetch(path, { headers: { Accept: "application/json" }, ...options });
    } catch (_) {
      throw new ApiError("Could not reach the server. Check your connection and try again.", "network", 0);
    }
    const text = await response.text();
    if (!response.ok) throw apiError(response.status, text);
    return text ? JSON.parse(text) : null;
  }

  // fetch() has no upload progress; XMLHttpRequest does.
  function uploadJob(formData, onProgress, onStart = () => {}) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      onStart(xhr);
      xhr.open("POST", "/v1/jobs");
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          try { resolve(JSON.parse(xhr.responseText)); } catch (_) { reject(apiError(xhr.status, xhr.responseText)); }
        } else {
          reject(apiError(xhr.status, xhr.responseText));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError("The upload failed: the server could not be reached.", "network", 0)));
      xhr.addEventListener("abort", () => reject(new ApiError("The upload was aborted.", "aborted", 0)));
      xhr.send(formData);
    });
  }

  // Poll a job until it finishes or stopped() says so; slower after network errors (a restarting server),
  // and throws the API's error for a job that is gone (404).
  async function followJob(id, onJob, stopped) {
    let failures = 0;
    while (!stopped()) {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS * (failures ? Math.min(2 ** failures, 10) : 1)));
      if (stopped()) return;
      try {
        const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
        failures = 0;
        if (stopped()) return;
        onJob(job);
        if (TERMINAL.has(job.status)) return;
      } catch (error) {
        if (error.status === 404) throw error;
        failures += 1;
      }
    }
  }

  // --- formatting -----------------------------------------------------------------------------------

  function formatBytes(bytes) {
    if (bytes == null) return "";
    const units = ["B", "KB", "MB", "GB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
  }

  function formatSeconds(seconds) {
    if (seconds == null) return "";
    if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
    if (seconds < 90) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function formatAgo(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "";
    const seconds = Math.max(0, (Date.now() - then) / 1000);
    if (seconds < 60) return "just now";
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
    return new Date(then).toLocaleDateString();
  }

  const formatImage = (image) => image
    ? [`${image.width} × ${image.height}`, (image.format || "").toUpperCase(),
      image.frames ? `${image.frames} frames` : "", formatBytes(image.bytes)].filter(Boolean).join(" · ")
    : "";

  // What a job's progress counts: frames for videos and animations, tiles for images.
  const unitOf = (job) => (job.input && job.input.kind ? "frames" : "tiles");

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    node.append(...children.filter((child) => child != null));
    return node;
  }

  // --- recent jobs (this browser only: localStorage) -------------------------------------------------

  const recent = {
    load() {
      try {
        const list = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
        return Array.isArray(list) ? list : [];
      } catch (_) { return []; }
    },
    save(list) {
      try { localStorage.setItem(RECENT_KEY, JSON.stringify(list.slice(0, RECENT_MAX))); } catch (_) { /* full or off */ }
      renderRecent();
    },
    upsert(job) {
      const entry = {
        id: job.id, status: job.status, model: job.model, created_at: job.created_at,
        name: (job.input && job.input.name) || job.id,
      };
      const list = this.load();
      const index = list.findIndex((item) => item.id === job.id);
      if (index >= 0) {
        const old = list[index];
        if (old.status === entry.status && old.model === entry.model) return;
        list[index] = { ...old, ...entry };
      } else {
        list.unshift(entry);
      }
      this.save(list);
    },
    setStatus(id, status) {
      const list = this.load();
      const item = list.find((entry) => entry.id === id);
      if (item && item.status !== status) { item.status = status; this.save(list); }
    },
    remove(id) { this.save(this.load().filter((item) => item.id !== id)); },
  };

  function renderRecent() {
    const listNode = $("#recent");
    if (!listNode) return;
    const list = recent.load();
    $("#recent-empty").hidden = list.length > 0;
    $("#recent-clear").hidden = list.length === 0;
    listNode.replaceChildren(...list.map((item) => {
      const thumb = el("img", { class: "recent-thumb", alt: "", loading: "lazy", width: 48, height: 48,
        src: item.status === "expired" ? null : `/v1/jobs/${encodeURIComponent(item.id)}/input` });
      thumb.addEventListener("error", () => thumb.classList.add("is-missing"));
      const forget = el("button", { type: "button", class: "btn btn-ghost btn-icon", "aria-label": `Remove ${item.name} from the list`, text: "×" });
      forget.addEventListener("click", () => recent.remove(item.id));
      return el("li", { class: "recent-item", "data-job-id": item.id },
        thumb,
        el("div", { class: "recent-main" },
          el("a", { href: `/result/${encodeURIComponent(item.id)}`, class: "recent-name", text: item.name }),
          el("div", { class: "hint", text: [item.model, formatAgo(item.created_at)].filter(Boolean).join(" · ") })),
        el("span", { class: `badge badge-${item.status}`, text: STATUS_TEXT[item.status] || item.status }),
        forget);
    }));
  }

  // Statuses of unfinished jobs moved on while this page was closed: ask once on load.
  async function refreshRecent() {
    for (const item of recent.load().filter((entry) => !TERMINAL.has(entry.status) && entry.status !== "expired")) {
      try {
        recent.upsert(await api(`/v1/jobs/${encodeURIComponent(item.id)}`));
      } catch (error) {
        if (error.status === 404) recent.setStatus(item.id, "expired");
      }
    }
  }

  // --- one job: status, progress, comparison, actions ----------------------------------------------

  const JOB_HTML = `
    <div class="card-head">
      <h2 class="job-title" id="job-title" tabindex="-1">Job</h2>
      <span class="badge" data-ref="status"></span>
    </div>
    <dl class="meta" data-ref="meta"></dl>
    <div class="progress-row" data-ref="progress-row">
      <span class="progress-label" data-ref="progress-label" id="job-progress-label">Waiting in queue…</span>
      <progress max="1" data-ref="progress" aria-labelledby="job-progress-label"></progress>
    </div>
    <p class="visually-hidden" role="status" data-ref="announce"></p>
    <div class="alert alert-error" role="alert" data-ref="error" hidden></div>
    <div class="alert alert-info" data-ref="notice" hidden></div>
    <figure class="compare" data-ref="compare" hidden>
      <div class="compare-frame" data-ref="frame">
        <img class="compare-after" data-ref="after" alt="Enhanced image">
        <img class="compare-before" data-ref="before" alt="Original image, scaled up by the browser">
        <div class="compare-handle" aria-hidden="true"></div>
        <span class="compare-tag compare-tag-before" aria-hidden="true">Before</span>
        <span class="compare-tag compare-tag-after" aria-hidden="true">After</span>
        <input type="range" class="compare-range" data-ref="range" min="0" max="100" value="50" step="1"
               aria-label="Comparison: left of the handle the original, right the enhanced image">
      </div>
      <figcaption class="hint">Drag across the image or use the arrow keys to compare the original
        (scaled up by the browser) with the enhanced image.</figcaption>
    </figure>
    <figure class="player" data-ref="player" hidden>
      <video data-ref="video" controls muted loop playsinline preload="auto" aria-label="Enhanced video"></video>
    </figure>
    <div class="actions">
      <a class="btn btn-primary" data-ref="download" hidden download>Download</a>
      <button type="button" class="btn" data-ref="cancel" hidden>Cancel job</button>
      <a class="btn" data-ref="permalink" hidden>Open result page</a>
      <button type="button" class="btn btn-danger" data-ref="delete" hidden>Delete job</button>
    </div>`;

  class JobView {
    constructor(section, { showPermalink = false } = {}) {
      this.section = section;
      this.showPermalink = showPermalink;
      this.job = null;
      this.pollToken = 0;
      section.innerHTML = JOB_HTML;
      this.ref = {};
      for (const node of section.querySelectorAll("[data-ref]")) this.ref[node.dataset.ref] = node;

      const { range, frame, cancel } = this.ref;
      range.addEventListener("input", () => frame.style.setProperty("--pos", `${range.value}%`));
      frame.style.setProperty("--pos", `${range.value}%`);
      cancel.addEventListener("click", () => this.cancel());
      this.ref.delete.addEventListener("click", () => this.remove());
    }

    // Show a job and poll it until it finishes.
    show(job) {
      this.pollToken += 1;
      this.lastKey = null;
      this.ref.range.value = 50;
      this.ref.frame.style.setProperty("--pos", "50%");
      this.section.hidden = false;
      this.render(job);
      if (!TERMINAL.has(job.status)) this.poll(job.id, this.pollToken);
    }

    async load(id) {
      this.section.hidden = false;
      this.ref.status.textContent = "Loading…";
      try {
        const job = await api(`/v1/jobs/${encodeURIComponent(id)}`);
        recent.upsert(job);
        this.show(job);
      } catch (error) {
        if (error.status === 404) recent.setStatus(id, "expired");
        this.showError(error.message);
      }
    }

    async poll(id, token) {
      try {
        await followJob(id, (job) => this.render(job), () => token !== this.pollToken);
      } catch (error) {
        recent.setStatus(id, "expired");
        this.showError(error.message);
      }
    }

    render(job) {
      const { ref } = this;
      const done = TERMINAL.has(job.status);
      // Screen readers hear status changes only, not every poll.
      if (!this.job || this.job.id !== job.id || this.job.status !== job.status) {
        ref.announce.textContent = ANNOUNCE[job.status] || "";
      }
      this.job = job;
      recent.upsert(job);
      this.section.dataset.status = job.status;
      this.section.dataset.jobId = job.id;
      ref.status.className = `badge badge-${job.status}`;
      ref.status.textContent = STATUS_TEXT[job.status] || job.status;
      this.section.querySelector(".job-title").textContent = (job.input && job.input.name) || `Job ${job.id}`;

      const rows = [
        ["Model", job.model],
        ["Input", formatImage(job.input)],
        ["Output", formatImage(job.output)],
        ["Waited", formatSeconds(job.queue_seconds)],
        ["Processing", formatSeconds(job.processing_seconds)],
      ].filter(([, value]) => value);
      ref.meta.replaceChildren(...rows.map(([name, value]) => el("div", {}, el("dt", { text: name }), el("dd", { text: value }))));

      // Progress: indeterminate while queued; tiles done while running.
      ref["progress-row"].hidden = done;
      const progress = job.progress || {};
      if (job.status === "running" && progress.total) {
        ref.progress.value = progress.fraction ?? progress.done / progress.total;
        ref["progress-label"].textContent = `Enhancing… ${progress.done} of ${progress.total} ${unitOf(job)}`;
      } else {
        ref.progress.removeAttribute("value");
        ref["progress-label"].textContent = job.status === "running" ? "Enhancing…" : "Waiting in queue…";
      }

      ref.error.hidden = job.status !== "failed";
      if (job.status === "failed") ref.error.textContent = (job.error && job.error.message) || "The job failed.";
      ref.notice.hidden = job.status !== "canceled";
      if (job.status === "canceled") ref.notice.textContent = "This job was canceled.";

      const succeeded = job.status === "succeeded" && job.output;
      const playable = succeeded && VIDEO_FORMATS.has(job.output.format);
      ref.compare.hidden = !succeeded || playable;
      ref.player.hidden = !playable;
      ref.download.hidden = !succeeded;
      if (succeeded) this.showComparison(job);
      ref.cancel.hidden = done;
      ref.cancel.disabled = false;
      ref.delete.hidden = !done;
      ref.permalink.hidden = !this.showPermalink;
      ref.permalink.href = `/result/${encodeURIComponent(job.id)}`;
    }

    showComparison(job) {
      const { ref } = this;
      const key = `${job.id}:${job.output.url}`;
      if (this.lastKey === key) return; // do not reload the images on every render
      this.lastKey = key;
      ref.download.href = job.output.url;
      ref.download.textContent = `Download ${(job.output.format || "").toUpperCase()} (${formatBytes(job.output.bytes)})`;
      if (VIDEO_FORMATS.has(job.output.format)) { // a video plays; there is no still to compare
        ref.video.src = job.output.url;
        return;
      }
      ref.frame.style.setProperty("--ar", `${job.output.width} / ${job.output.height}`);
      ref.frame.style.setProperty("--ar-num", String(job.output.width / job.output.height));
      ref.before.src = job.input.url;
      ref.after.src = job.output.url;
      ref.after.width = job.output.width;
      ref.after.height = job.output.height;
    }

    showError(message) {
      this.section.hidden = false;
      this.section.dataset.status = "error";
      this.ref.status.className = "badge badge-failed";
      this.ref.status.textContent = "Error";
      this.ref.error.textContent = message;
      this.ref.error.hidden = false;
      for (const name of ["progress-row", "compare", "player", "download", "cancel", "delete", "permalink", "notice"]) this.ref[name].hidden = true;
    }

    async cancel() {
      if (!this.job) return;
      this.ref.cancel.disabled = true;
      try {
        const job = await api(`/v1/jobs/${encodeURIComponent(this.job.id)}/cancel`, { method: "POST" });
        if (job && job.id) this.render(job);
      } catch (error) {
        this.ref.cancel.disabled = false;
        this.ref.error.textContent = error.message;
        this.ref.error.hidden = false;
      }
    }

    async remove() {
      if (!this.job) return;
      const id = this.job.id;
      try {
        await api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
      } catch (error) {
        if (error.status !== 404) {
          this.ref.error.textContent = error.message;
          this.ref.error.hidden = false;
          return;
        }
      }
      this.pollToken += 1;
      recent.remove(id);
      this.section.hidden = true;
      this.job = null;
    }
  }

  // --- many files at once: one job each, a row per file -------------------------------------------

  const UPLOADS_AT_ONCE = 2;

  class BatchView {
    constructor(section) {
      this.section = section;
      this.list = $("#batch-list", section);
      this.items = [];
      $("#batch-cancel", section).addEventListener("click", () => this.cancelAll());
      $("#batch-download", section).addEventListener("click", () => this.downloadAll());
    }

    // Upload every file with the same options (at most UPLOADS_AT_ONCE at a time), then follow each job.
    async start(files, options) {
      this.stopAll();
      this.items = files.map((file) => this.makeItem(file));
      this.list.replaceChildren(...this.items.map((item) => item.row));
      $("#batch-error", this.section).hidden = true;
      this.section.hidden = false;
      this.update();
      const waiting = [...this.items];
      const uploader = async () => {
        for (let item = waiting.shift(); item; item = waiting.shift()) await this.upload(item, options);
      };
      await Promise.all(Array.from({ length: UPLOADS_AT_ONCE }, uploader));
    }

    makeItem(file) {
      // stopped: canceled by the user; abandoned: a new batch replaced this one (stop polling)
      const item = { file, job: null, status: "waiting", xhr: null, stopped: false, abandoned: false };
      const progress = el("progress", { max: 1, "aria-label": `Progress of ${file.name}` });
      const cancel = el("button", { type: "button", class: "btn btn-ghost", text: "Cancel", "aria-label": `Cancel ${file.name}` });
      cancel.addEventListener("click", () => this.cancel(item));
      const download = el("a", { class: "btn btn-ghost", download: true, hidden: true, text: "Download", "aria-label": `Download ${file.name}` });
      item.ref = {
        progress, cancel, download,
        name: el("span", { class: "batch-name", text: file.name }),
        badge: el("span", { class: "badge" }),
        detail: el("span", { class: "hint batch-detail" }),
      };
      item.row = el("li", { class: "batch-item" },
        el("div", { class: "batch-main" }, item.ref.name, item.ref.detail), progress, item.ref.badge, download, cancel);
      this.render(item);
      return item;
    }

    async upload(item, options) {
      if (item.stopped) return;
      const data = new FormData();
      for (const [name, value] of clipOptions(item.file, options)) data.append(name, value);
      data.append("image", item.file, item.file.name);
      item.status = "uploading";
      this.render(item);
      try {
        const job = await uploadJob(data, (fraction) => { item.uploaded = fraction; this.render(item); },
          (xhr) => { item.xhr = xhr; });
        item.xhr = null;
        recent.upsert(job);
        this.show(item, job);
        if (item.stopped) await this.cancel(item); // "cancel" pressed as the upload finished
        if (!TERMINAL.has(item.status)) this.follow(item);
      } catch (error) {
        item.xhr = null;
        if (error.code === "aborted") return;
        item.status = "error";
        item.message = error.message;
        this.render(item);
      }
    }

    async follow(item) {
      try {
        await followJob(item.job.id, (job) => this.show(item, job), () => item.abandoned);
      } catch (error) {
        item.status = "error";
        item.message = error.message;
        this.render(item);
      }
    }

    show(item, job) {
      item.job = job;
      item.status = job.status;
      item.message = job.status === "failed" ? (job.error && job.error.message) || "The job failed." : "";
      recent.upsert(job);
      this.render(item);
    }

    render(item) {
      const { row, ref, status, job } = item;
      row.dataset.status = status;
      if (job) row.dataset.jobId = job.id;
      ref.badge.className = `badge badge-${status}`;
      ref.badge.textContent = { waiting: "Waiting", uploading: "Uploading", error: "Error" }[status]
        || STATUS_TEXT[status] || status;
      const progress = (job && job.progress) || {};
      if (status === "uploading") ref.progress.value = item.uploaded || 0;
      else if (status === "succeeded") ref.progress.value = 1;
      else if (status === "running" && progress.total) ref.progress.value = progress.fraction;
      else ref.progress.removeAttribute("value");
      ref.detail.textContent = status === "uploading" ? `Uploading… ${Math.round((item.uploaded || 0) * 100)}%`
        : status === "running" && progress.total ? `${progress.done} of ${progress.total} ${unitOf(job)}`
        : status === "succeeded" && job.output ? formatImage(job.output)
        : item.message || "";
      ref.cancel.hidden = TERMINAL.has(status) || status === "error";
      ref.download.hidden = status !== "succeeded";
      if (status === "succeeded") ref.download.href = job.output.url;
      this.update();
    }

    // The summary line and the "all" buttons.
    update() {
      const count = (statuses) => this.items.filter((item) => statuses.includes(item.status)).length;
      const done = count(["succeeded"]);
      const open = this.items.length - count([...TERMINAL, "error"]);
      $("#batch-summary", this.section).textContent =
        `${done} of ${this.items.length} done` + (open ? `, ${open} in progress` : "");
      $("#batch-cancel", this.section).hidden = open === 0;
      const download = $("#batch-download", this.section);
      download.hidden = done === 0;
      download.textContent = `Download all (${done})`;
      this.section.dataset.open = String(open);
    }

    async cancel(item) {
      item.stopped = true;
      if (item.xhr) item.xhr.abort();
      if (!item.job) {
        if (!TERMINAL.has(item.status)) { item.status = "canceled"; this.render(item); }
        return;
      }
      if (TERMINAL.has(item.status)) return;
      try {
        this.show(item, await api(`/v1/jobs/${encodeURIComponent(item.job.id)}/cancel`, { method: "POST" }));
      } catch (error) {
        item.message = error.message;
        this.render(item);
      } // a running job stops at its next tile; follow() shows it
    }

    cancelAll() { return Promise.all(this.items.map((item) => this.cancel(item))); }

    stopAll() {
      for (const item of this.items) {
        item.abandoned = item.stopped = true;
        if (item.xhr) item.xhr.abort();
      }
    }

    // One zip of every finished result (POST /v1/archives), saved through a temporary link.
    async downloadAll() {
      const ids = this.items.filter((item) => item.status === "succeeded").map((item) => item.job.id);
      const error = $("#batch-error", this.section);
      error.hidden = true;
      let response;
      try {
        response = await fetch("/v1/archives", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ job_ids: ids }),
        });
      } catch (_) {
        response = null;
      }
      if (!response || !response.ok) {
        error.textContent = response ? apiError(response.status, await response.text()).message
          : "Could not reach the server. Check your connection and try again.";
        error.hidden = false;
        return;
      }
      const url = URL.createObjectURL(await response.blob());
      const link = el("a", { href: url, download: "esrgan-results.zip", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
    }
  }

  // The form's options for one file: a video or GIF keeps its kind unless a clip format was chosen.
  function clipOptions(file, options) {
    return options.filter(([name, value]) => !(name === "format" && isClipFile(file) && !CLIP_OUTPUTS.has(value)));
  }

  // --- the upload page --------------------------------------------------------------------------------

  function setupUploadPage() {
    const form = $("#upload-form");
    const fileInput = $("#image");
    const dropzone = $("#dropzone");
    const modelSelect = $("#model");
    const scaleSelect = $("#scale");
    const formatSelect = $("#format");
    const strength = $("#strength");
    const quality = $("#quality");
    const formError = $("#form-error");
    const submit = $("#submit");
    const jobView = new JobView($("#job"), { showPermalink: true });
    const batchView = new BatchView($("#batch"));
    let models = [];
    let strengthModel = null;

    form.noValidate = true; // we show our own messages
    fileInput.multiple = true; // several files become one job each (the plain form posts one)

    function showFormError(message) {
      formError.textContent = message;
      formError.hidden = !message;
    }

    // File choice: picker, drag-and-drop, preview with dimensions.
    function showFile() {
      const files = [...fileInput.files];
      const file = files[0];
      const preview = $("#file-preview");
      showFormError("");
      dropzone.classList.toggle("has-file", Boolean(file));
      preview.hidden = !file;
      if (!file) return;
      const thumb = $("#file-thumb");
      if (thumb.src) URL.revokeObjectURL(thumb.src);
      if (files.length > 1) {
        $("#file-name").textContent = `${files.length} images`;
        $("#file-info").textContent = `${formatBytes(files.reduce((sum, f) => sum + f.size, 0))} · one job each`;
        thumb.removeAttribute("src");
        thumb.classList.add("is-missing");
        return;
      }
      $("#file-name").textContent = file.name;
      $("#file-info").textContent = formatBytes(file.size);
      if (file.type.startsWith("video/")) { // no thumbnail for a video: its name and size say enough
        thumb.removeAttribute("src");
        thumb.classList.add("is-missing");
        return;
      }
      thumb.classList.remove("is-missing");
      thumb.onload = () => {
        $("#file-info").textContent = `${thumb.naturalWidth} × ${thumb.naturalHeight} · ${formatBytes(file.size)}`;
      };
      // e.g. TIFF: the browser cannot show it, the server can still read it
      thumb.onerror = () => thumb.classList.add("is-missing");
      thumb.src = URL.createObjectURL(file);
    }
    fileInput.addEventListener("change", showFile);
    $("#file-clear").addEventListener("click", () => { fileInput.value = ""; showFile(); fileInput.click(); });

    for (const type of ["dragenter", "dragover"]) {
      dropzone.addEventListener(type, (event) => { event.preventDefault(); dropzone.classList.add("is-dragging"); });
    }
    for (const type of ["dragleave", "dragend"]) {
      dropzone.addEventListener(type, (event) => {
        if (!dropzone.contains(event.relatedTarget)) dropzone.classList.remove("is-dragging");
      });
    }
    dropzone.addEventListener("drop", (event) => {
      event.preventDefault();
      dropzone.classList.remove("is-dragging");
      if (event.dataTransfer && event.dataTransfer.files.length) {
        fileInput.files = event.dataTransfer.files;
        showFile();
      }
    });
    // A file dropped outside the drop zone would make the browser navigate away to it.
    window.addEventListener("dragover", (event) => event.preventDefault());
    window.addEventListener("drop", (event) => event.preventDefault());

    // Models, scale and the strength slider for models that have one.
    function effectiveModel() {
      const scale = Number(scaleSelect.value);
      return models.find((m) => m.name === modelSelect.value)
        || models.find((m) => m.default && m.scale === scale)
        || null;
    }

    function updateModelFields() {
      const model = effectiveModel();
      $("#model-hint").textContent = model
        ? `${modelSelect.value ? "" : `${model.name}: `}${model.description || model.arch || ""}`.trim()
        : "";
      const hasStrength = Boolean(model && model.strength);
      $("#strength-field").hidden = !hasStrength;
      strength.disabled = !hasStrength;
      if (hasStrength && strengthModel !== model.name) {
        strength.value = model.strength.default ?? 1;
        strengthModel = model.name;
      }
      $("#strength-value").textContent = Number(strength.value).toFixed(2);
    }

    async function loadModels() {
      try {
        models = await api("/v1/models");
      } catch (error) {
        $("#model-hint").textContent = `Could not load the model list (${error.message}); the server's default is used.`;
        return;
      }
      for (const model of models) {
        // What the model is for, in one line: its description up to the colon ("Real photos, JPEGs...: ...").
        const purpose = (model.description || "").includes(":") ? ` — ${model.description.split(":")[0]}` : "";
        const label = `${model.name} · ${model.scale}×${model.default ? " (default)" : ""}${purpose}`;
        modelSelect.append(el("option", { value: model.name, text: label, title: model.description || "" }));
      }
      modelSelect.disabled = models.length === 0;
      const scales = new Set(models.map((m) => m.scale));
      if (scales.size && !scales.has(Number(scaleSelect.value))) scaleSelect.value = String(Math.max(...scales));
      updateModelFields();
    }

    modelSelect.addEventListener("change", () => {
      const model = models.find((m) => m.name === modelSelect.value);
      if (model) scaleSelect.value = String(model.scale);
      updateModelFields();
    });
    scaleSelect.addEventListener("change", () => {
      const model = models.find((m) => m.name === modelSelect.value);
      if (model && model.scale !== Number(scaleSelect.value)) modelSelect.value = "";
      updateModelFields();
    });
    strength.addEventListener("input", () => { $("#strength-value").textContent = Number(strength.value).toFixed(2); });

    function updateQuality() {
      const lossy = ["jpg", "webp", "mp4", "webm"].includes(formatSelect.value);
      $("#quality-field").hidden = !lossy;
      quality.disabled = !lossy;
    }
    formatSelect.addEventListener("change", updateQuality);
    quality.addEventListener("input", () => { $("#quality-value").textContent = quality.value; });
    updateQuality();

    // Upload with progress, then follow the job.
    const progressRow = $("#upload-progress-row");
    const progressBar = $("#upload-progress");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!fileInput.files.length) {
        showFormError("Choose an image first.");
        fileInput.focus();
        return;
      }
      const data = new FormData(form);
      for (const [name, value] of [...data.entries()]) {
        if (value === "") data.delete(name); // empty optional fields: let the server choose
      }
      showFormError("");
      if (fileInput.files.length > 1) {
        data.delete("image");
        jobView.section.hidden = true;
        batchView.start([...fileInput.files], [...data.entries()]);
        batchView.section.scrollIntoView({ behavior: "smooth", block: "start" });
        return;
      }
      if (!clipOptions(fileInput.files[0], [["format", data.get("format")]]).length) data.delete("format");
      submit.disabled = true;
      progressRow.hidden = false;
      progressBar.value = 0;
      $("#upload-label").textContent = "Uploading…";
      try {
        const job = await uploadJob(data, (fraction) => {
          progressBar.value = Math.round(fraction * 100);
          $("#upload-label").textContent = fraction < 1 ? `Uploading… ${Math.round(fraction * 100)}%` : "Uploaded, creating job…";
        });
        progressBar.value = 100;
        recent.upsert(job);
        jobView.show(job);
        jobView.section.scrollIntoView({ behavior: "smooth", block: "start" });
        jobView.section.querySelector(".job-title").focus({ preventScroll: true });
      } catch (error) {
        showFormError(error.message);
      } finally {
        submit.disabled = false;
        progressRow.hidden = true;
      }
    });

    loadModels();
  }

  // --- start --------------------------------------------------------------------------------------------

  function init() {
    const clear = $("#recent-clear");
    if (clear) clear.addEventListener("click", () => recent.save([]));
    renderRecent();
    refreshRecent();
    window.addEventListener("storage", (event) => { if (event.key === RECENT_KEY) renderRecent(); });

    if (document.body.dataset.page === "upload") {
      setupUploadPage();
    } else if (document.body.dataset.page === "result") {
      const id = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
      new JobView($("#job")).load(id);
    }
  }

  init();
})();
