"""Videos and animations through the job service, end to end: real Redis, real Celery workers, the API
under uvicorn, real HTTP. Clips are made here (bench/clipfactory.py), a few frames of 32x24 or so."""
from __future__ import annotations

import httpx
import pytest

from bench.clipfactory import animation_bytes, animation_frames, audio_packets, video_bytes, video_frames
from bench.harness import ServiceStack, wait_until

CHUNK = 4  # frames per part: a 24-frame clip is 6 parts
LIMITS = dict(max_upload_bytes=2_000_000, max_clip_frames=60, max_clip_seconds=20,
              max_frame_input_pixels=200 * 200, max_frame_output_pixels=400 * 400,
              max_clip_output_pixels=3_000_000, clip_chunk_frames=CHUNK)
TIMING = dict(job_time_limit=15, job_kill_grace=2, broker_visibility_timeout=1, broker_restore_interval=1,
              worker_heartbeat_seconds=1, job_max_attempts=3)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, models_dir):
    with ServiceStack.running(tmp_path_factory.mktemp("video"), models_dir, "v1", **LIMITS, **TIMING) as s:
        yield s


def parts_of(stack, job_id: str) -> list:
    return sorted((stack.data_dir / "parts").glob(f"{job_id}.*.part"))


def result(stack, job: dict) -> bytes:
    r = stack.http.get(job["output"]["url"])
    assert r.status_code == 200, r.text
    return r.content


def test_mp4_with_audio_at_x2_keeps_timing_audio_and_rotation(stack):
    clip = video_bytes(12, 32, 24, rate=12, audio=True, rotation=90)
    job = stack.submit(clip, filename="clip.mp4", scale=2)
    assert job["input"]["kind"] == "video" and job["input"]["frames"] == 12 and job["input"]["audio"] is True
    done = stack.wait_for(job["id"])
    assert done["status"] == "succeeded", done
    assert done["output"]["format"] == "mp4" and done["output"]["frames"] == 12
    assert (done["output"]["width"], done["output"]["height"]) == (64, 48)
    assert done["progress"] == {"done": 12, "total": 12, "fraction": 1.0}  # progress counts frames

    r = stack.http.get(done["output"]["url"])
    assert r.headers["content-type"] == "video/mp4" and 'filename="clip_x2.mp4"' in r.headers["content-disposition"]
    src, out = video_frames(clip), video_frames(r.content)
    assert out["count"] == 12 and out["sizes"] == {(64, 48)}
    assert out["times"] == src["times"] and out["rate"] == src["rate"]
    assert out["rotation"] == 90
    assert audio_packets(r.content) == audio_packets(clip) != []  # copied bit for bit
    assert not parts_of(stack, job["id"])  # joined once, then the parts are gone


def test_job_answers_and_webhooks_leave_out_clip_fields_for_images():
    from api.schemas import JobOut
    from jobs.records import Job
    from model.options import JobOptions

    options = JobOptions(model="tiny-x2", scale=2, width=8, height=8, format="png", quality=95)
    image = Job(id="ab" * 16, status="succeeded", owner="", model="tiny-x2", options=options, created_at="",
                input={"name": "a.png", "width": 4, "height": 4, "format": "png", "bytes": 10},
                output={"width": 8, "height": 8, "format": "png", "bytes": 20})
    sent = JobOut.public(image)
    assert set(sent["input"]) == {"name", "width", "height", "format", "bytes", "url"}
    assert set(sent["output"]) == {"width", "height", "format", "bytes", "url"}
    assert sent["options"] == options.model_dump() and "precision" in sent and "webhook" in sent

    clip = Job(**{**vars(image), "input": {**image.input, "kind": "video", "frames": 3, "duration": 0.1,
                                             "fps": 30.0, "audio": False},
                  "output": {**image.output, "frames": 3, "resumed_at_frame": 0}})
    sent = JobOut.public(clip)
    assert sent["input"]["kind"] == "video" and sent["input"]["audio"] is False
    assert sent["output"]["frames"] == 3 and sent["output"]["resumed_at_frame"] == 0


def test_animated_gif_at_x2_keeps_durations_and_loop(stack):
    gif = animation_bytes(6, 20, 16, fmt="GIF", durations=[50, 100, 150, 50, 100, 70], loop=3)
    done = stack.wait_for(stack.submit(gif, filename="anim.gif", scale=2)["id"])
    assert done["status"] == "succeeded", done
    assert done["input"]["kind"] == "animation" and done["output"]["format"] == "gif"
    out = animation_frames(result(stack, done))
    assert out["format"] == "GIF" and out["count"] == 6 and out["size"] == (40, 32)
    assert out["durations"] == [50, 100, 150, 50, 100, 70] and out["loop"] == 3


def test_transparent_apng_stays_transparent_and_gif_becomes_webp_or_mp4(stack):
    apng = animation_bytes(5, 24, 24, fmt="PNG", alpha=True)
    done = stack.wait_for(stack.submit(apng, filename="a.png", model="tiny-x2")["id"])
    assert done["status"] == "succeeded", done
    out = animation_frames(result(stack, done))
    assert out["format"] == "PNG" and out["count"] == 5 and out["size"] == (48, 48)
    for frame in out["frames"]:  # the hole in the middle stays clear, the border opaque
        assert frame[20:28, 20:28, 3].max() == 0 and frame[:4, :4, 3].min() == 255

    gif = animation_bytes(6, 20, 16, fmt="GIF", durations=[100] * 6)
    webp = stack.wait_for(stack.submit(gif, filename="g.gif", scale=2, format="webp")["id"])
    assert webp["status"] == "succeeded", webp
    assert animation_frames(result(stack, webp))["durations"] == [100] * 6
    mp4 = stack.wait_for(stack.submit(gif, filename="g.gif", scale=2, format="mp4")["id"])
    assert mp4["status"] == "succeeded", mp4
    seen = video_frames(result(stack, mp4))
    assert seen["count"] == 6 and seen["sizes"] == {(40, 32)} and seen["times"][:3] == [0.0, 0.1, 0.2]


def test_webm_keeps_its_opus_audio(stack):
    clip = video_bytes(8, 32, 24, rate=8, fmt="webm", audio=True)
    done = stack.wait_for(stack.submit(clip, filename="c.webm", scale=2)["id"])
    assert done["status"] == "succeeded", done
    data = result(stack, done)
    assert video_frames(data)["codec"] == "vp9" and video_frames(data)["count"] == 8
    assert audio_packets(data) == audio_packets(clip) != []


@pytest.mark.parametrize("clip, status, words", [
    (video_bytes(70, 16, 16, rate=30, audio=False), 413, "frames"),  # over max_clip_frames, from the header
    (animation_bytes(70, 8, 8, durations=[20] * 70), 413, "frames"),  # a GIF too
    (video_bytes(50, 16, 16, rate=2, audio=False), 413, "lasts"),  # 25 s, over max_clip_seconds
    (video_bytes(4, 208, 208, audio=False), 422, "per frame"),  # input pixels per frame
    (video_bytes(60, 64, 64, rate=30, audio=False), 413, "total"),  # x4: 60 x 256 x 256 output pixels
])
def test_clips_over_the_limits_are_refused_before_any_work(stack, clip, status, words):
    r = stack.http.post("/v1/jobs", files={"image": ("big.mp4", clip)}, data={"scale": "4"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == "limit_exceeded" and words in error["message"], error


def test_output_pixels_per_frame_limit(stack):
    r = stack.http.post("/v1/jobs", files={"image": ("c.mp4", video_bytes(4, 64, 64, audio=False))},
                        data={"width": "640"})
    assert r.status_code == 422 and "per frame" in r.json()["error"]["message"], r.text


def test_formats_that_cannot_hold_the_clip_are_refused_at_submission(stack):
    mp4 = video_bytes(4, 16, 16, audio=True)
    for fmt, words in (("webm", "aac audio cannot go into WEBM"), ("gif", "a video can be written as")):
        r = stack.http.post("/v1/jobs", files={"image": ("c.mp4", mp4)}, data={"format": fmt})
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_option", r.text
        assert words in r.json()["error"]["message"]


def test_corrupt_clips_fail_clearly_and_leave_nothing(stack):
    clip = video_bytes(24, 32, 24, audio=False)
    r = stack.http.post("/v1/jobs", files={"image": ("bad.mp4", clip[:200])})  # header cut off
    assert r.status_code == 415 and r.json()["error"]["code"] == "bad_image", r.text
    assert "MP4" in r.json()["error"]["message"]

    # The header is whole, the frame data behind it damaged: the worker finds out, says so, keeps nothing.
    damaged = bytearray(clip)
    start = damaged.find(b"mdat") + 8
    damaged[start:start + len(damaged) // 2] = bytes(len(damaged) // 2)
    job = stack.submit(bytes(damaged), filename="bad.mp4")
    failed = stack.wait_for(job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "bad_image", failed
    assert "corrupt" in failed["error"]["message"] and "MP4" in failed["error"]["message"]
    assert not parts_of(stack, job["id"]) and not list((stack.data_dir / "generated").glob(f"{job['id']}.*"))


def test_cancel_stops_between_frames_and_removes_the_parts(stack):
    clip = video_bytes(40, 96, 96, audio=False, rate=24)
    job = stack.submit(clip, filename="long.mp4", model="tiny-x2", tile=32)
    wait_until(lambda: stack.job(job["id"])["progress"]["done"] >= CHUNK + 1, 60, "the clip did not start")
    assert stack.http.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    stopped = stack.wait_for(job["id"])
    assert stopped["status"] == "canceled", stopped
    assert stopped["progress"]["done"] < 40
    wait_until(lambda: not parts_of(stack, job["id"]), 10, "the canceled job's parts were left behind")


def test_worker_killed_mid_clip_resumes_at_the_first_unfinished_chunk(stack):
    """Runs last: it leaves the stack with whichever worker survived."""
    stack.start_worker("v2")
    clip = video_bytes(24, 96, 96, audio=True, rate=12)
    job = stack.submit(clip, filename="resume.mp4", model="tiny-x2", tile=32)  # 9 tiles a frame
    wait_until(lambda: len(parts_of(stack, job["id"])) >= 2, 120, "no chunk was finished")
    victim = stack.record(job["id"])["worker"].split("@")[0]
    stack.kill_worker(victim)  # SIGKILL, the worker and its job process
    finished = len(parts_of(stack, job["id"]))
    assert 2 <= finished < 24 // CHUNK, "the clip was done before the kill"

    done = stack.wait_for(job["id"], timeout=240)
    assert done["status"] == "succeeded", done
    assert stack.record(job["id"])["attempts"] == "2"
    # The second attempt started at the first chunk the first one had not finished: nothing done twice.
    assert done["output"]["resumed_at_frame"] == finished * CHUNK
    data = httpx.get(stack.base_url + done["output"]["url"]).content
    seen = video_frames(data)
    assert seen["count"] == 24 and seen["sizes"] == {(192, 192)} and seen["times"] == video_frames(clip)["times"]
    assert audio_packets(data) == audio_packets(clip)
    assert not parts_of(stack, job["id"])
