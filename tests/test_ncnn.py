"""ncnn models: converted from files the tests write, compared pixel by pixel with the ncnn package's CPU run;
the refusals; x3 through the CLI; the official models from their package."""
import struct

import ncnn
import numpy as np
import pytest

from model import official
from model.convert import CheckpointError, convert_ncnn
from model.engine import Upscaler
from tests import ncnn_factory as nf
from tests.helpers import esrgan

PAD = 8  # input pixels mirrored past each edge, for both runtimes (the engine's edge_pad)


def ncnn_reference(param, img: np.ndarray) -> np.ndarray:
    """The ncnn package's CPU output (uint8) for ``img`` with PAD mirrored pixels around it, cropped back."""
    net = ncnn.Net()
    net.opt.num_threads = 2
    net.load_param(str(param))
    net.load_model(str(param.with_suffix(".bin")))
    x = np.ascontiguousarray(np.pad(img.astype(np.float32) / 255, ((PAD, PAD), (PAD, PAD), (0, 0)),
                                    mode="symmetric").transpose(2, 0, 1))  # kept alive: ncnn.Mat does not copy
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(x))
    _, out = extractor.extract("output")
    y = np.array(out).transpose(1, 2, 0)
    s = y.shape[0] // x.shape[1]
    y = y[PAD * s:-PAD * s, PAD * s:-PAD * s] if y.shape[0] % x.shape[1] == 0 else y
    return np.clip(np.rint(y * 255), 0, 255).astype(np.uint8)


def upscale(folder, img: np.ndarray, tile: int = 0) -> np.ndarray:
    return Upscaler.from_artifact(folder, precision="float32", tile=tile, edge_pad=PAD, tile_pad=8).upscale(img)


def photo(h: int = 22, w: int = 18) -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[120:120 + h, 200:200 + w])


GRAPHS = {
    "rrdb-onnx2ncnn-fp32": (lambda p: nf.rrdbnet(p), 4, "rrdbnet"),
    "rrdb-old-layers-fp16": (lambda p: nf.rrdbnet(p, style="old", fp16=True, blocks=3, feat=12, grow=6), 4, "rrdbnet"),
    "rrdb-x2": (lambda p: nf.rrdbnet(p, scale=2, blocks=1), 2, "rrdbnet"),
    "rrdb-x2-unshuffle-fp16": (lambda p: nf.rrdbnet(p, scale=2, unshuffle=True, fp16=True), 2, "rrdbnet"),
    "srvgg-x4-fp16": (lambda p: nf.srvgg(p, fp16=True), 4, "srvgg"),
    "srvgg-x2": (lambda p: nf.srvgg(p, scale=2, convs=2), 2, "srvgg"),
    "srvgg-x4-one-prelu-slope": (lambda p: nf.srvgg(p, shared_slope=True), 4, "srvgg"),
    "srvgg-x4-bicubic-to-x3": (lambda p: nf.srvgg(p, resize=0.75), 3, "srvgg"),
    "srvgg-x4-bicubic-to-x2-fp16": (lambda p: nf.srvgg(p, resize=0.5, fp16=True), 2, "srvgg"),
}


@pytest.mark.parametrize("kind", GRAPHS)
def test_converted_graph_matches_the_ncnn_runtime(tmp_path, kind):
    make, scale, arch = GRAPHS[kind]
    param = make(tmp_path / "net.param")
    manifest = convert_ncnn(param, tmp_path / "models", "net")
    assert (manifest.scale, manifest.arch, manifest.precision) == (scale, arch, "float32")
    assert manifest.training["converted_from"]["weights_storage"] == ("float16" if "fp16" in kind else "float32")
    img = photo()
    ours, ref = upscale(tmp_path / "models" / "net", img), ncnn_reference(param, img)
    assert ours.shape == ref.shape == (22 * scale, 18 * scale, 3)
    diff = np.abs(ours.astype(int) - ref)
    assert diff.max() <= 1, diff.max()
    assert ours.std() > 5  # a network that draws something, not a flat image both runtimes agree on
    # Tiles join without seams, the bicubic tail included (each tile resizes its padded window).
    assert np.abs(upscale(tmp_path / "models" / "net", img, tile=32).astype(int) - ours).max() <= 1


def _swap_first_concat(param):
    lines = param.read_text().splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("Concat"))
    t = lines[i].split()
    t[4], t[5] = t[5], t[4]  # same shapes, channels in another order
    lines[i] = " ".join(t)
    param.write_text("\n".join(lines) + "\n")


def _retype(param, old, new):
    param.write_text(param.read_text().replace(f"\n{old} ", f"\n{new} ", 1))


def _set_first_tag(param, tag):
    data = bytearray(param.with_suffix(".bin").read_bytes())
    data[:4] = struct.pack("<I", tag)
    param.with_suffix(".bin").write_bytes(bytes(data))


REFUSALS = {
    "int8 weights": (lambda p: _set_first_tag(p, 0x000D4B38), "stores int8 weights"),
    "unknown layer": (lambda p: _retype(p, "Concat", "Pooling"), "unsupported ncnn layer Pooling 'concat_"),
    "rewired graph": (_swap_first_concat, "the first layer that computes something else is Convolution"),
    "truncated bin": (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes()[:-100]),
                      "ends early"),
    "bin of another model": (lambda p: p.with_suffix(".bin").write_bytes(p.with_suffix(".bin").read_bytes() + b"x" * 8),
                             "8 bytes left over"),
    "not a param file": (lambda p: p.write_text("hello\n"), "not an ncnn .param file"),
    "no bin": (lambda p: p.with_suffix(".bin").unlink(), "no such file"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_name_the_problem_and_write_nothing(tmp_path, case):
    spoil, message = REFUSALS[case]
    param = nf.rrdbnet(tmp_path / "net.param")
    spoil(param)
    with pytest.raises(CheckpointError, match=message.replace("(", r"\(")):
        convert_ncnn(param, tmp_path / "models", "net")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_convert_and_upscale_at_x3_from_the_command_line(tmp_path):
    from PIL import Image

    param = nf.srvgg(tmp_path / "anime.param", resize=0.75, fp16=True)
    models = tmp_path / "models"
    run = esrgan("convert", param, "--name", "anime-x3", "--models-dir", models)
    assert run.returncode == 0, run.stderr
    assert "SRVGGNetCompact, 3 convs, 8 features, x4, then bicubic x0.75 (x3)" in run.stdout
    Image.fromarray(photo(20, 26)).save(tmp_path / "in.png")
    run = esrgan("upscale", tmp_path / "in.png", "-o", tmp_path / "out.png", "--scale", "3", "--models-dir", models)
    assert run.returncode == 0, run.stderr
    assert "anime-x3 (x3" in run.stdout
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (60, 78, 3)
    inner = np.s_[3 * PAD:-3 * PAD, 3 * PAD:-3 * PAD]  # the CLI mirrors 4 px past the edges, the helper 8
    assert np.abs(out[inner].astype(int) - upscale(models / "anime-x3", photo(20, 26))[inner]).max() <= 1

    bad = esrgan("convert", tmp_path / "missing.param", "--name", "x", "--models-dir", models)
    assert bad.returncode == 1 and "esrgan convert: " in bad.stderr and "no such file" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_official_model_installs_from_its_package_and_matches_ncnn(tmp_path):
    entry = official.BY_NAME["realesr-animevideov3-x2"]
    param, package = official.locate(entry)
    assert package in official.PACKAGES.values()
    manifest = official.install(entry.name, tmp_path)
    assert manifest.scale == 2 and manifest.license.startswith("BSD-3-Clause")
    assert "Real-ESRGAN" in manifest.source and manifest.description.startswith("Anime video frames")
    img = photo(40, 36)
    ours, ref = upscale(tmp_path / entry.name, img), ncnn_reference(param, img)
    assert (np.abs(ours.astype(int) - ref) <= 1).mean() >= 0.999


def test_official_model_installs_on_first_use(tmp_path):
    from model.engine import load_upscaler
    from model.settings import Settings

    settings = Settings(models_dir=tmp_path / "own", official_models_dir=tmp_path / "official")
    up = load_upscaler("realesr-animevideov3-x3", settings=settings)
    assert (tmp_path / "official" / "realesr-animevideov3-x3" / "manifest.json").is_file()
    assert up.scale == 3 and up.net_scale == 4 and up.precision == "float32"  # the manifest's pin under auto
    assert up.upscale(photo(10, 12)).shape == (30, 36, 3)


def test_x3_job_through_the_service(tmp_path):
    """scale=3 picks the x3 model and the result is 3x the upload; the models list says where it came from."""
    import io

    from PIL import Image

    from model.convert import convert_ncnn
    from bench.harness import ServiceStack, png_bytes

    models = tmp_path / "models"
    convert_ncnn(nf.srvgg(tmp_path / "a.param", resize=0.75), models, "anime-x3", license="test licence")
    with ServiceStack.running(tmp_path / "service", models) as stack:
        listed = stack.http.get("/v1/models").json()
        assert [(m["name"], m["scale"], m["license"], m["precision"]) for m in listed] == [
            ("anime-x3", 3, "test licence", "float32")]
        job = stack.submit(png_bytes(20, 14), scale=3)
        assert job["model"] == "anime-x3"
        done = stack.wait_for(job["id"])
        assert done["status"] == "succeeded", done
        assert (done["output"]["width"], done["output"]["height"]) == (60, 42)
        out = Image.open(io.BytesIO(stack.http.get(f"/v1/jobs/{job['id']}/result").content))
        assert out.size == (60, 42)
        r = stack.http.post("/v1/jobs", files={"image": ("p.png", png_bytes(8, 8))}, data={"scale": "5"})
        assert r.status_code == 422 and "scale" in r.text
