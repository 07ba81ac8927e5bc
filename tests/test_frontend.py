"""The browser front end, end to end: headless Chromium (Debian's) against the real service: Redis, a Celery
worker process running a tiny TensorFlow model, and the API under uvicorn (bench/harness.py).

Screenshots of each state go to the test's tmp folder; set FRONTEND_SCREENSHOTS=folder to keep them
(docs/frontend.png is made that way).
"""
from __future__ import annotations

import io
import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.harness import ServiceStack

pw = pytest.importorskip("playwright.sync_api")  # a dev dependency (pyproject [dev])

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
JOB_TIMEOUT_MS = 120_000

# Records what the page showed over time, so states that pass quickly (upload progress, queued) can be
# asserted after the fact.
RECORDER = """
window.__seen = {upload: [], status: [], progress: []};
new MutationObserver(() => {
  const up = document.querySelector('#upload-progress');
  if (up && up.value) window.__seen.upload.push(up.value);
  const job = document.querySelector('#job');
  const status = job && job.dataset.status;
  const seen = window.__seen.status;
  if (status && seen[seen.length - 1] !== status) seen.push(status);
  const label = job && job.querySelector('[data-ref=progress-label]');
  if (label && /of \\d+ tiles/.test(label.textContent)) window.__seen.progress.push(label.textContent);
}).observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
"""


def photo(path: Path, width: int, height: int) -> Path:
    """A real photograph (scikit-image's bundled cat), shrunk: what a user would upload."""
    from skimage import data

    Image.fromarray(data.chelsea()).resize((width, height), Image.LANCZOS).save(path)
    return path


@pytest.fixture(scope="module")
def web_models(tmp_path_factory, models_dir) -> Path:
    """The tiny x2/x4 models plus an interpolated one (a strength between its PSNR and GAN ends)."""
    import keras

    from model.archs import build_generator
    from model.artifacts import model_weights
    from bench.harness import TINY_RRDB, make_artifact

    root = tmp_path_factory.mktemp("web-models")
    for artifact in models_dir.iterdir():
        shutil.copytree(artifact, root / artifact.name)
    keras.utils.set_random_seed(7)
    psnr_end = model_weights(build_generator("rrdbnet", {**TINY_RRDB, "scale": 4}))
    make_artifact(root, "tiny-x4-gan", scale=4, seed=3, psnr_weights=psnr_end, default_strength=0.6)
    return root


@pytest.fixture(scope="module")
def stack(tmp_path_factory, web_models):
    with ServiceStack(tmp_path_factory.mktemp("web"), web_models) as stack:
        stack.start_redis()
        stack.start_worker("web")
        stack.start_api()
        yield stack


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium; `make test` does)")
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def shots(tmp_path):
    """page -> screenshot file; kept in FRONTEND_SCREENSHOTS when that is set."""
    keep = os.environ.get("FRONTEND_SCREENSHOTS")

    def shoot(page, name: str, **kwargs) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=path, **kwargs)
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(keep) / path.name)
        return path

    return shoot


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1200, "height": 900},
                                  accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.add_init_script(RECORDER)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def choose_file(page, path: Path) -> None:
    """Pick a file the way a user does: click the drop zone, answer the file chooser."""
    with page.expect_file_chooser() as chooser:
        page.get_by_text("choose a file").click()
    chooser.value.set_files(path)


def wait_status(page, *statuses: str) -> str:
    selector = ", ".join(f"#job[data-status={s}]" for s in statuses)
    page.wait_for_selector(selector, timeout=JOB_TIMEOUT_MS)
    return page.get_attribute("#job", "data-status")


def image_loaded(page, selector: str) -> tuple[int, int]:
    page.wait_for_function(f"document.querySelector('{selector}').complete && "
                           f"document.querySelector('{selector}').naturalWidth > 0")
    return tuple(page.eval_on_selector(selector, "img => [img.naturalWidth, img.naturalHeight]"))


def test_upload_progress_comparison_and_download(page, stack, tmp_path, shots):
    src = photo(tmp_path / "cat.png", 60, 40)
    page.goto("/")
    # The model list comes from /v1/models: the select is enabled and lists the installed models.
    page.wait_for_function("!document.querySelector('#model').disabled")
    options = page.eval_on_selector_all("#model option", "os => os.map(o => o.value)")
    assert set(options) == {"", "tiny-x2", "tiny-x4", "tiny-x4-gan"}

    choose_file(page, src)
    assert page.inner_text("#file-name") == "cat.png"
    page.wait_for_function("document.querySelector('#file-info').textContent.includes('60 × 40')")
    # Controls are reachable by their labels (what a screen reader announces).
    page.get_by_label("Model", exact=True).select_option("tiny-x2")
    assert page.get_by_label("Scale", exact=True).input_value() == "2"  # follows the model
    page.get_by_label("Output format").select_option("png")
    page.get_by_text("More options").click()
    page.get_by_label("Tile size").fill("16")  # several tiles: the job reports progress
    page.get_by_label("Best quality (self-ensemble)").check()
    shots(page, "1-chosen")
    page.get_by_role("button", name="Enhance").click()

    assert wait_status(page, "succeeded", "failed") == "succeeded", page.inner_text("#job")
    seen = page.evaluate("window.__seen")
    assert seen["upload"] and seen["upload"][-1] == 100, seen  # upload progress reached 100 %
    assert seen["status"][0] in ("queued", "running") and seen["status"][-1] == "succeeded", seen
    # Screen readers are told the outcome once, through the job's status region.
    assert page.locator("#job [role=status]").text_content() == "Done: the enhanced image is ready to download."
    job_id = page.get_attribute("#job", "data-job-id")
    job = stack.job(job_id)
    assert job["model"] == "tiny-x2" and job["options"]["tile"] == 16 and job["options"]["ensemble"] is True
    assert job["progress"]["total"] > 1 and job["progress"]["done"] == job["progress"]["total"]

    # The comparison: both images loaded, the original stretched by CSS over the enhanced one.
    assert page.is_visible(".compare-frame")
    assert image_loaded(page, ".compare-before") == (60, 40)
    assert image_loaded(page, ".compare-after") == (120, 80)
    before_box = page.locator(".compare-before").bounding_box()
    after_box = page.locator(".compare-after").bounding_box()
    assert before_box == after_box and before_box["width"] > 120  # shown larger than the input itself
    assert "Output120 × 80 · PNG" in page.locator("#job .meta").text_content()

    # The slider works from the keyboard and clips the "before" image at its position.
    slider = page.get_by_label(re.compile("Comparison"))
    slider.focus()
    page.keyboard.press("Home")
    assert page.eval_on_selector(".compare-before", "i => getComputedStyle(i).clipPath") == "inset(0px 100% 0px 0px)"
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    clip = page.eval_on_selector(".compare-before", "i => getComputedStyle(i).clipPath")
    assert clip == "inset(0px 70% 0px 0px)", clip
    shots(page, "2-done", full_page=True)

    # Download: the enhanced PNG at twice the size.
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("^Download PNG")).click()
    download = download_info.value
    assert download.suggested_filename == "cat_x2.png"
    with Image.open(download.path()) as out:
        assert out.format == "PNG" and out.size == (120, 80)
        enhanced = np.asarray(out.convert("RGB"))
    with Image.open(src) as original:
        assert enhanced.std() > 0 and enhanced.shape[:2] != np.asarray(original).shape[:2]


def test_bad_file_shows_the_api_message(page, stack, shots):
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    junk = b"this is a text file, not a picture\n" * 10
    # Dropped onto the drop zone, as a drag from the desktop would.
    page.evaluate("""bytes => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], 'notes.png', {type: 'image/png'}));
        document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", list(junk))
    assert page.inner_text("#file-name") == "notes.png"
    page.get_by_role("button", name="Enhance").click()
    error = page.locator("#form-error")
    error.wait_for(state="visible")
    with stack.client() as client:  # the same upload straight to the API: the page shows its message
        answer = client.post("/v1/jobs", files={"image": ("notes.png", junk)})
    assert answer.status_code == 415
    assert error.inner_text() == answer.json()["error"]["message"]
    assert page.get_attribute("#form-error", "role") == "alert"
    assert page.is_hidden("#job")
    shots(page, "3-bad-file")

    # No file at all: a message from the page, no request.
    page.goto("/")
    page.get_by_role("button", name="Enhance").click()
    assert page.locator("#form-error").inner_text() == "Choose an image first."


def test_strength_slider_recent_jobs_across_reload_and_the_result_page(page, stack, tmp_path, shots):
    src = photo(tmp_path / "kitten.png", 40, 30)
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    choose_file(page, src)
    # The strength slider exists only for a model that has one, starting at the model's default.
    strength = page.get_by_label(re.compile("^Strength"))
    assert strength.is_hidden() and strength.is_disabled()
    page.get_by_label("Model", exact=True).select_option("tiny-x4-gan")
    assert strength.is_visible() and strength.input_value() == "0.6"
    strength.focus()
    page.keyboard.press("Home")
    for _ in range(5):
        page.keyboard.press("ArrowRight")  # 5 steps of 0.05
    assert page.inner_text("#strength-value") == "0.25"
    shots(page, "4-strength")
    page.get_by_role("button", name="Enhance").click()
    assert wait_status(page, "succeeded", "failed") == "succeeded", page.inner_text("#job")
    job_id = page.get_attribute("#job", "data-job-id")
    job = stack.job(job_id)
    assert job["model"] == "tiny-x4-gan" and job["options"]["strength"] == 0.25 and job["options"]["ensemble"] is False
    page.get_by_label("Scale", exact=True).select_option("2")  # tiny-x2: no strength
    assert page.get_by_label("Model", exact=True).input_value() == "" and strength.is_hidden()

    page.reload()
    item = page.locator(f"#recent li[data-job-id='{job_id}']")
    item.wait_for()
    assert "kitten.png" in item.inner_text() and "Done" in item.inner_text()
    assert page.is_hidden("#recent-empty")
    shots(page, "5-recent")

    item.get_by_role("link", name="kitten.png").click()
    page.wait_for_url(f"**/result/{job_id}")
    assert wait_status(page, "succeeded") == "succeeded"
    assert image_loaded(page, ".compare-after") == (160, 120)
    assert image_loaded(page, ".compare-before") == (40, 30)
    shots(page, "6-result-page", full_page=True)

    # Delete from the result page: the files go, and so does the list entry.
    page.get_by_role("button", name="Delete job").click()
    page.wait_for_selector(f"#recent li[data-job-id='{job_id}']", state="detached")
    with stack.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 404

    # The deleted job's page now says so, in the API's words: a 404 from the server, or the page's alert.
    response = page.goto(f"/result/{job_id}")
    if response.status == 404:
        assert "no job" in response.json()["error"]["message"]
    else:
        page.wait_for_selector("#job[data-status=error]")
        assert "no job" in page.locator("#job [role=alert]").inner_text()


def test_cancel_a_running_job(page, stack, tmp_path, shots):
    # Many small tiles: the job runs long enough to be seen moving and to be canceled between tiles.
    src = photo(tmp_path / "big.png", 320, 240)
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    choose_file(page, src)
    page.get_by_text("More options").click()
    page.get_by_label("Tile size").fill("16")
    page.get_by_label("Best quality (self-ensemble)").check()  # 8x the passes: seconds even on OpenVINO
    page.get_by_role("button", name="Enhance").click()
    page.wait_for_function("(document.querySelector('#job [data-ref=progress]') || {}).value > 0",
                           timeout=JOB_TIMEOUT_MS)
    assert re.fullmatch(r"Enhancing… \d+ of \d+ tiles", page.locator("#job [data-ref=progress-label]").inner_text())
    shots(page, "7-running")
    cancel = page.get_by_role("button", name="Cancel job")
    cancel.click()
    assert wait_status(page, "canceled", "succeeded", "failed") == "canceled"
    assert page.locator("#job [data-ref=notice]").inner_text() == "This job was canceled."
    assert page.is_hidden("#job .compare") and cancel.is_hidden()
    job_id = page.get_attribute("#job", "data-job-id")
    job = stack.job(job_id)
    assert job["status"] == "canceled" and job["progress"]["done"] < job["progress"]["total"]
    page.reload()
    assert "Canceled" in page.locator(f"#recent li[data-job-id='{job_id}']").inner_text()


def test_plain_form_post_without_javascript(browser, stack, tmp_path):
    """Progressive enhancement: with JavaScript off the form posts to /upload and lands on the result page."""
    src = photo(tmp_path / "plain.png", 24, 16)
    context = browser.new_context(base_url=stack.base_url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/")
        assert page.get_attribute("form", "action") == "/upload"
        page.set_input_files("#image", src)
        page.get_by_label("Scale", exact=True).select_option("2")
        page.get_by_role("button", name="Enhance").click()
        page.wait_for_url(re.compile(r"/result/[0-9a-f]+$"))
        job_id = page.url.rsplit("/", 1)[1]
        assert "Your job was accepted" in page.inner_text("main")  # the <noscript> explanation
    finally:
        context.close()
    job = stack.wait_for(job_id)
    assert job["status"] == "succeeded" and job["model"] == "tiny-x2"
    assert (job["output"]["width"], job["output"]["height"]) == (48, 32)


def drop_files(page, files: list[Path]) -> None:
    """Drop files onto the drop zone, as a drag from the desktop would."""
    page.evaluate("""files => {
        const dt = new DataTransfer();
        for (const [name, bytes] of files) dt.items.add(new File([new Uint8Array(bytes)], name, {type: 'image/png'}));
        document.querySelector('#dropzone').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [[f.name, list(f.read_bytes())] for f in files])


def test_many_files_at_once_and_download_all(page, stack, tmp_path, shots):
    sizes = {"one.png": (30, 20), "two.png": (24, 24), "three.png": (20, 28)}
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    drop_files(page, [photo(tmp_path / name, *size) for name, size in sizes.items()])
    assert page.inner_text("#file-name") == "3 images"
    page.get_by_label("Scale", exact=True).select_option("2")
    page.get_by_role("button", name="Enhance").click()

    rows = page.locator("#batch-list li")
    assert rows.count() == 3 and page.is_hidden("#job")
    page.wait_for_function("[...document.querySelectorAll('#batch-list li')].every(li => "
                           "['succeeded', 'failed', 'error', 'canceled'].includes(li.dataset.status))",
                           timeout=JOB_TIMEOUT_MS)
    statuses = rows.evaluate_all("lis => lis.map(li => [li.querySelector('.batch-name').textContent, li.dataset.status])")
    assert statuses == [[name, "succeeded"] for name in sizes], statuses
    assert page.inner_text("#batch-summary") == "3 of 3 done" and page.is_hidden("#batch-cancel")
    assert rows.nth(0).locator("progress").evaluate("p => p.value") == 1
    assert "60 × 40" in rows.nth(0).inner_text()  # each row shows its output
    ids = rows.evaluate_all("lis => lis.map(li => li.dataset.jobId)")
    assert all(stack.job(i)["model"] == "tiny-x2" for i in ids)
    shots(page, "8-many-files", full_page=True)

    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download all (3)").click()
    download = download_info.value
    assert download.suggested_filename == "esrgan-results.zip"
    with zipfile.ZipFile(download.path()) as archive:
        assert sorted(archive.namelist()) == sorted(f"{Path(n).stem}_x2.png" for n in sizes)
        for name, (w, h) in sizes.items():
            with Image.open(io.BytesIO(archive.read(f"{Path(name).stem}_x2.png"))) as im:
                assert im.size == (2 * w, 2 * h)
    # Every file is also in the recent jobs list.
    for job_id in ids:
        page.locator(f"#recent li[data-job-id='{job_id}']").wait_for()


def test_many_files_cancel_all(page, stack, tmp_path):
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    drop_files(page, [photo(tmp_path / f"big{i}.png", 320, 240) for i in range(2)])
    page.get_by_text("More options").click()
    page.get_by_label("Tile size").fill("16")  # many tiles: still running when canceled
    page.get_by_role("button", name="Enhance").click()
    page.wait_for_function("document.querySelectorAll('#batch-list li[data-job-id]').length === 2")
    page.get_by_role("button", name="Cancel all").click()
    page.wait_for_function("[...document.querySelectorAll('#batch-list li')].every(li => li.dataset.status === "
                           "'canceled')", timeout=JOB_TIMEOUT_MS)
    ids = page.locator("#batch-list li").evaluate_all("lis => lis.map(li => li.dataset.jobId)")
    assert [stack.job(i)["status"] for i in ids] == ["canceled", "canceled"]
    assert page.is_hidden("#batch-download") and page.is_hidden("#batch-cancel")


def test_a_video_plays_in_the_page_and_a_gif_animates_in_the_comparison(page, stack, tmp_path, shots):
    from bench.clipfactory import animation_bytes, video_bytes

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(video_bytes(12, 32, 24, rate=12, audio=True))
    page.goto("/")
    page.wait_for_function("!document.querySelector('#model').disabled")
    choose_file(page, clip)
    page.get_by_label("Scale", exact=True).select_option("2")
    page.get_by_label("Output format").select_option("png")  # an image format: the video stays a video
    page.get_by_role("button", name="Enhance").click()

    assert wait_status(page, "succeeded", "failed") == "succeeded", page.inner_text("#job")
    assert "12 frames" in page.locator("#job .meta").text_content()
    assert page.is_visible("#job video") and not page.is_visible(".compare-frame")
    # The browser decodes the H.264 result and plays it: its size, its length, time moving on.
    page.wait_for_function("document.querySelector('#job video').readyState >= 2", timeout=30_000)
    assert page.eval_on_selector("#job video", "v => [v.videoWidth, v.videoHeight]") == [64, 48]
    assert abs(page.eval_on_selector("#job video", "v => v.duration") - 1.0) < 0.1
    page.eval_on_selector("#job video", "v => v.play()")
    page.wait_for_function("document.querySelector('#job video').currentTime > 0.2", timeout=30_000)
    shots(page, "video-playing", full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("^Download MP4")).click()
    assert download_info.value.suggested_filename == "clip_x2.mp4"

    gif = tmp_path / "anim.gif"
    gif.write_bytes(animation_bytes(4, 20, 16, durations=[100] * 4))
    page.goto("/")
    choose_file(page, gif)
    page.get_by_label("Scale", exact=True).select_option("2")
    page.get_by_role("button", name="Enhance").click()
    assert wait_status(page, "succeeded", "failed") == "succeeded", page.inner_text("#job")
    assert image_loaded(page, ".compare-after") == (40, 32)
    assert "Output40 × 32 · GIF · 4 frames" in page.locator("#job .meta").text_content()
