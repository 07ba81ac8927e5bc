"""The converter against reference PyTorch networks: every published naming, saved with random weights,
converted, loaded through the artifact path and run on the same random images as the PyTorch original."""
import json

import numpy as np
import pytest
import torch

from model.artifacts import load_keras_model, read_manifest
from model.convert import CheckpointError, convert_checkpoint, detect, read_tensors, to_keras
from tests.torch_reference import OldESRGAN, SRVGGNetCompact
from training.torch_archs import ESRGAN_NAMES, RRDBNet

torch.set_num_threads(1)
TOL = 1e-4


def plain(net):
    return net.state_dict()


def ema_and_dataparallel(net):
    # BasicSR training checkpoints: EMA weights beside the raw ones (EMA wins), DataParallel's prefix.
    decoy = {k: torch.randn_like(v) for k, v in net.state_dict().items()}
    return {"params": decoy, "params_ema": {f"module.{k}": v for k, v in net.state_dict().items()}}


def params_wrapper(net):
    return {"params": net.state_dict()}


CASES = {
    # id: (reference network, how the file wraps its state dict, expected arch, expected params)
    "esrgan-old-x4": (lambda: OldESRGAN(4), plain, "rrdbnet", dict(scale=4, num_block=2, num_feat=16, num_grow_ch=8)),
    "esrgan-old-x2": (lambda: OldESRGAN(2, num_block=1), plain, "rrdbnet", dict(scale=2, num_block=1, num_feat=16, num_grow_ch=8)),
    "esrgan-x4": (lambda: RRDBNet(4, num_block=2, num_feat=16, num_grow_ch=8, names=ESRGAN_NAMES), plain, "rrdbnet",
                  dict(scale=4, num_block=2, num_feat=16, num_grow_ch=8)),
    "basicsr-x4-ema": (lambda: RRDBNet(4, num_block=2, num_feat=16, num_grow_ch=8), ema_and_dataparallel, "rrdbnet",
                       dict(scale=4, num_block=2, num_feat=16, num_grow_ch=8)),
    "basicsr-x2-unshuffle": (lambda: RRDBNet(2, num_block=2, num_feat=12, num_grow_ch=6), params_wrapper, "rrdbnet",
                             dict(scale=2, num_block=2, num_feat=12, num_grow_ch=6, pixel_unshuffle=True)),
    "basicsr-x2-one-stage": (lambda: RRDBNet(2, num_block=1, num_feat=8, num_grow_ch=4, pixel_unshuffle=False), params_wrapper, "rrdbnet",
                             dict(scale=2, num_block=1, num_feat=8, num_grow_ch=4)),
    "basicsr-anime-6b": (lambda: RRDBNet(4, num_block=6, num_feat=8, num_grow_ch=4), params_wrapper, "rrdbnet",
                         dict(scale=4, num_block=6, num_feat=8, num_grow_ch=4)),
    "srvgg-x4": (lambda: SRVGGNetCompact(4, num_feat=16, num_conv=3), params_wrapper, "srvgg", dict(scale=4, num_feat=16, num_conv=3)),
    "srvgg-x2": (lambda: SRVGGNetCompact(2, num_feat=8, num_conv=2), plain, "srvgg", dict(scale=2, num_feat=8, num_conv=2)),
}


def torch_output(net, image: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = net(torch.from_numpy(image.transpose(0, 3, 1, 2).copy()))
    return out.numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("case", list(CASES))
def test_converted_model_matches_pytorch(case, tmp_path):
    make, wrap, arch, params = CASES[case]
    torch.manual_seed(sum(map(ord, case)))
    net = make().eval()
    path = tmp_path / f"{case}.pth"
    torch.save(wrap(net), path)

    manifest = convert_checkpoint(path, tmp_path / "models", "converted")
    assert (manifest.arch, manifest.params, manifest.scale) == (arch, params, params["scale"])

    model = load_keras_model(tmp_path / "models" / "converted")  # the same path upscale/serve take
    rng = np.random.default_rng(0)
    for h, w in [(12, 16), (10, 6)]:  # even sizes: x2 models pixel-unshuffle their input
        image = rng.random((1, h, w, 3), dtype=np.float32)
        expected = torch_output(net, image)
        got = np.asarray(model(image))
        assert got.shape == expected.shape == (1, h * params["scale"], w * params["scale"], 3)
        assert np.abs(got - expected).max() <= TOL, f"{case}: max abs diff {np.abs(got - expected).max()}"
        assert np.abs(expected).max() > 1e-2  # a real signal, not two near-zero outputs agreeing


def test_manifest_records_source_license_and_layout(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "RealESRGAN_x4plus_anime_6B.pth"  # a known official file name
    torch.save({"params_ema": RRDBNet(4, num_block=6, num_feat=8, num_grow_ch=4).state_dict()}, path)
    convert_checkpoint(path, tmp_path, "anime", default=True)
    manifest = read_manifest(tmp_path / "anime")
    digest = manifest.training["converted_from"]["sha256"]
    from model.artifacts import sha256_file

    assert digest == sha256_file(path)
    assert manifest.source.startswith(f"RealESRGAN_x4plus_anime_6B.pth (sha256 {digest})")
    assert manifest.license.startswith("BSD-3-Clause")
    assert manifest.training["converted_from"]["layout"] == "basicsr"
    assert manifest.default and "anime" in manifest.description
    assert manifest.training["num_params"] == sum(p.numel() for p in RRDBNet(4, num_block=6, num_feat=8, num_grow_ch=4).parameters())
    # An unknown file name gets no invented licence.
    other = tmp_path / "my_finetune.pth"
    torch.save(SRVGGNetCompact(4, num_feat=8, num_conv=1).state_dict(), other)
    assert convert_checkpoint(other, tmp_path, "mine").license is None
    assert json.loads((tmp_path / "mine" / "manifest.json").read_text())["arch"] == "srvgg"


def test_safetensors_file_converts_the_same(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(3)
    net = SRVGGNetCompact(4, num_feat=8, num_conv=2).eval()
    save_file(net.state_dict(), tmp_path / "model.safetensors")
    torch.save(net.state_dict(), tmp_path / "model.pth")
    a, b = read_tensors(tmp_path / "model.safetensors"), read_tensors(tmp_path / "model.pth")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    convert_checkpoint(tmp_path / "model.safetensors", tmp_path, "st")
    image = np.random.default_rng(1).random((1, 8, 8, 3), dtype=np.float32)
    got = np.asarray(load_keras_model(tmp_path / "st")(image))
    assert np.abs(got - torch_output(net, image)).max() <= TOL


def shapes_only(net_factory):
    """A checkpoint-shaped dict of the network's tensor shapes without allocating the weights."""
    with torch.device("meta"):
        net = net_factory()
    return {k: np.broadcast_to(np.float32(0), tuple(v.shape)) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("name,factory,expected", [
    ("RRDB_ESRGAN_x4 / RRDB_PSNR_x4", lambda: OldESRGAN(4, num_block=23, num_feat=64, num_grow_ch=32),
     ("esrgan-old", dict(scale=4, num_block=23, num_feat=64, num_grow_ch=32))),
    ("RealESRGAN_x4plus / RealESRNet_x4plus", lambda: RRDBNet(4, num_block=23, num_feat=64, num_grow_ch=32),
     ("basicsr", dict(scale=4, num_block=23, num_feat=64, num_grow_ch=32))),
    ("RealESRGAN_x2plus", lambda: RRDBNet(2, num_block=23, num_feat=64, num_grow_ch=32),
     ("basicsr", dict(scale=2, num_block=23, num_feat=64, num_grow_ch=32, pixel_unshuffle=True))),
    ("RealESRGAN_x4plus_anime_6B", lambda: RRDBNet(4, num_block=6, num_feat=64, num_grow_ch=32),
     ("basicsr", dict(scale=4, num_block=6, num_feat=64, num_grow_ch=32))),
    ("realesr-general-x4v3", lambda: SRVGGNetCompact(4, num_feat=64, num_conv=32), ("srvgg", dict(scale=4, num_feat=64, num_conv=32))),
    ("realesr-animevideov3", lambda: SRVGGNetCompact(4, num_feat=64, num_conv=16), ("srvgg", dict(scale=4, num_feat=64, num_conv=16))),
])
def test_official_sizes_detected_from_shapes(name, factory, expected):
    layout = detect(shapes_only(factory))
    assert (layout.kind, layout.params) == expected, name


def test_full_size_x4_maps_every_tensor():
    # The paper's 23-block network: all 16.7M parameters map onto the Keras model (no forward pass).
    state = shapes_only(lambda: RRDBNet(4, num_block=23, num_feat=64, num_grow_ch=32))
    weights = to_keras(state, detect(state))
    assert len(weights) == len(state) == 23 * 3 * 5 * 2 + 6 * 2
    assert sum(w.size for w in weights.values()) == 16_697_987
    assert weights["body_22_rdb3_conv5/kernel"].shape == (3, 3, 64 + 4 * 32, 64)


def test_interpolation_pair_and_engine_tiles_match_pytorch(tmp_path):
    """A GAN/PSNR pair becomes one artifact with a strength; through the engine (uint8, tiled) each
    strength matches PyTorch run with the same blend of the two state dicts."""
    from model.engine import Upscaler

    torch.manual_seed(5)
    gan, smooth = SRVGGNetCompact(4, num_feat=8, num_conv=2).eval(), SRVGGNetCompact(4, num_feat=8, num_conv=2).eval()
    torch.save({"params": gan.state_dict()}, tmp_path / "gan.pth")
    torch.save({"params": smooth.state_dict()}, tmp_path / "smooth.pth")
    manifest = convert_checkpoint(tmp_path / "gan.pth", tmp_path / "m", "pair", psnr=tmp_path / "smooth.pth",
                                  default_strength=0.5)
    assert manifest.interpolation.default_strength == 0.5
    assert manifest.training["interpolation_end"]["file"] == "smooth.pth"

    image = np.random.default_rng(2).integers(0, 256, (40, 24, 3), dtype=np.uint8)
    for strength in (1.0, 0.0, 0.3):
        blend = SRVGGNetCompact(4, num_feat=8, num_conv=2).eval()
        blend.load_state_dict({k: strength * v + (1 - strength) * smooth.state_dict()[k]
                               for k, v in gan.state_dict().items()})
        # the engine mirrors the context past the image's edges (tile_pad 16, wider than this network's
        # 4-pixel reach): so does the reference, which then crops the mirrored margin off
        mirrored = np.pad(image, ((8, 8), (8, 8), (0, 0)), mode="symmetric")
        expected = torch_output(blend, mirrored[None].astype(np.float32) / 255)[0][32:-32, 32:-32]
        expected = np.rint(np.clip(expected, 0, 1) * 255)
        up = Upscaler.from_artifact(tmp_path / "m" / "pair", strength=strength, tile=16,  # several tiles
                                    precision="float32")  # against PyTorch's float32
        got = up.upscale(image)
        assert got.shape == (160, 96, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - expected).max() <= 1, strength


def test_interpolation_end_must_be_the_same_network(tmp_path):
    torch.save(SRVGGNetCompact(4, num_feat=8, num_conv=2).state_dict(), tmp_path / "a.pth")
    torch.save(SRVGGNetCompact(4, num_feat=8, num_conv=3).state_dict(), tmp_path / "b.pth")
    with pytest.raises(CheckpointError, match="b.pth: holds .*3 convs.*same network.*2 convs"):
        convert_checkpoint(tmp_path / "a.pth", tmp_path, "x", psnr=tmp_path / "b.pth")
    assert not (tmp_path / "x").exists()
