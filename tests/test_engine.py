import threading
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
import tensorflow as tf

from bench.harness import make_artifact
from model.engine import Upscaler, load_upscaler
from model.errors import Canceled, InvalidOption, ModelNotFound
from model.settings import Settings


@pytest.fixture(scope="module")
def x4(models_dir):
    # float32: tiling tests compare to one level; bfloat16 rounding (the default on bf16 CPUs) has its own test
    return Upscaler.from_artifact(models_dir / "tiny-x4", tile_pad=16, precision="float32")


def test_native_scale_shape_and_dtype(x4, photo):
    out = x4.upscale(photo, tile=0)
    assert out.shape == (96 * 4, 120 * 4, 3) and out.dtype == np.uint8


def test_tiled_equals_untiled_within_one_level(x4, photo):
    whole = x4.upscale(photo, tile=0).astype(int)
    seen = []
    tiled = x4.upscale(photo, tile=40, progress=lambda d, t: seen.append((d, t))).astype(int)
    assert seen[-1] == (9, 9) and [d for d, _ in seen] == list(range(1, 10))  # 3x3 tiles of 40 (96 and 120 px)
    assert np.abs(whole - tiled).max() <= 1


@pytest.mark.parametrize("backend", ["tensorflow", "openvino"])
def test_bfloat16_tiles_join_without_seams(models_dir, photo, backend):
    """bfloat16 (auto on AMX/AVX512-BF16 CPUs) rounds differently per tile context: a few levels apart
    from one pass at most, never a visible seam."""
    up = Upscaler.from_artifact(models_dir / "tiny-x4", tile_pad=16, precision="bfloat16", backend=backend)
    diff = np.abs(up.upscale(photo, tile=0).astype(int) - up.upscale(photo, tile=40).astype(int))
    assert diff.max() <= 6 and diff.mean() < 0.5


def test_pixel_unshuffle_x2_odd_sizes_tiled(tmp_path, photo):
    make_artifact(tmp_path, "un-x2", scale=2, params={"pixel_unshuffle": True})
    up = Upscaler.from_artifact(tmp_path / "un-x2", tile_pad=16, precision="float32")
    img = photo[:95, :77]  # odd sizes: padded to even for the space-to-depth input
    whole = up.upscale(img, tile=0).astype(int)
    assert whole.shape == (190, 154, 3)
    assert np.abs(whole - up.upscale(img, tile=34).astype(int)).max() <= 1


def test_no_trace_per_size(models_dir):
    """One static trace for the first size, then one dynamic trace that serves every later size."""
    up = Upscaler.from_artifact(models_dir / "tiny-x4", backend="tensorflow")
    for h, w in [(10, 12), (10, 12), (17, 9), (33, 40), (21, 22)]:
        up.upscale(np.zeros((h, w, 3), np.uint8), tile=0)
    traces = up.runner.function._list_all_concrete_functions_for_serialization()
    assert len(traces) == 2
    assert any(t.inputs[0].shape.as_list() == [1, None, None, 3] for t in traces)


def test_gray_alpha_and_16bit_layouts(x4):
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 255, (20, 24), dtype=np.uint8)
    assert x4.upscale(gray).shape == (80, 96)
    gray1 = gray[:, :, None]
    assert x4.upscale(gray1).shape == (80, 96, 1)
    rgba = rng.integers(0, 255, (20, 24, 4), dtype=np.uint8)
    rgba[:, :12, 3] = 0
    rgba[:, 12:, 3] = 255
    out = x4.upscale(rgba)
    assert out.shape == (80, 96, 4)
    assert (out[:, :40, 3] == 0).all() and (out[:, 56:, 3] == 255).all()  # alpha kept away from the edge
    np.testing.assert_array_equal(out[..., :3], x4.upscale(rgba[..., :3]))  # colour ignores alpha
    deep = (rng.random((20, 24, 3)) * 65535).astype(np.uint16)
    out16 = x4.upscale(deep)
    assert out16.dtype == np.uint16 and out16.shape == (80, 96, 3)
    # 16-bit output really uses the fine levels, not an 8-bit image times 257
    assert (out16 % 257 != 0).mean() > 0.5
    out8 = x4.upscale((deep // 257).astype(np.uint8)).astype(int)
    assert np.abs(out16.astype(int) // 257 - out8).max() <= 2


def test_outscale_and_exact_size(x4, photo):
    assert x4.upscale(photo, outscale=2.5).shape == (240, 300, 3)
    assert x4.upscale(photo, size=(333, 111)).shape == (111, 333, 3)
    assert x4.upscale(photo, size=(240, None)).shape == (192, 240, 3)
    assert x4.output_size(10, 20, outscale=0.5) == (5, 10)
    with pytest.raises(InvalidOption):
        x4.upscale(photo, outscale=0)
    with pytest.raises(InvalidOption):
        x4.upscale(photo, size=(-3, 4))


def test_bad_inputs(x4):
    with pytest.raises(InvalidOption):
        x4.upscale(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(InvalidOption):
        x4.upscale(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(InvalidOption):
        x4.upscale(np.zeros((0, 4, 3), np.uint8))
    with pytest.raises(InvalidOption):
        x4.upscale(np.zeros((4, 4, 3), np.uint8), tile=-1)


def test_cancel_between_tiles(x4, photo):
    calls = []

    def progress(done, total):
        calls.append(done)
        if done == 2:
            stop.set()

    stop = threading.Event()
    with pytest.raises(Canceled):
        x4.upscale(photo, tile=32, progress=progress, cancel=stop)
    assert calls == [1, 2]
    with pytest.raises(Canceled):
        x4.upscale(photo, tile=32, cancel=lambda: True)


@pytest.mark.parametrize("backend", ["tensorflow", "openvino"])
def test_out_of_memory_on_a_tile_retries_smaller(models_dir, photo, backend):
    # Fault injection: the device refuses any tile input over 100x100 pixels (a tile and its mirrored
    # context), as a GPU out of memory would, with the error its runtime raises.
    x4 = Upscaler.from_artifact(models_dir / "tiny-x4", tile_pad=16, backend=backend, precision="float32")
    real = x4._forward
    shapes = []

    def forward(x):
        shapes.append(tuple(x.shape[1:3]))
        if x.shape[1] * x.shape[2] > 100 * 100:
            raise (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor")
                   if backend == "tensorflow" else MemoryError("std::bad_alloc"))
        return real(x)

    try:
        x4._forward = forward
        out = x4.upscale(photo, tile=0).astype(int)
    finally:
        x4._forward = real
    assert len(shapes) > 1 and max(a * b for a, b in shapes[1:]) <= 100 * 100
    assert np.abs(out - x4.upscale(photo, tile=0).astype(int)).max() <= 1


def test_thread_safe_many_images_at_once(x4):
    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 255, (16 + i, 20 + 2 * i, 3), dtype=np.uint8) for i in range(6)]
    expected = [x4.upscale(im, tile=0) for im in imgs]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda im: x4.upscale(im, tile=12), imgs))
    for e, g in zip(expected, got):
        assert e.shape == g.shape and np.abs(e.astype(int) - g.astype(int)).max() <= 1


def test_srresnet_value_range(tmp_path, photo):
    make_artifact(tmp_path, "srres", scale=2, arch="srresnet", params={"num_block": 2, "num_feat": 8})
    out = Upscaler.from_artifact(tmp_path / "srres").upscale(photo[:16, :16])
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_auto_tile_follows_memory_budget(models_dir):
    small = Upscaler.from_artifact(models_dir / "tiny-x4", tile_memory_mb=64).auto_tile()
    big = Upscaler.from_artifact(models_dir / "tiny-x4", tile_memory_mb=1024).auto_tile()
    assert 32 <= small < big


def test_load_upscaler_caches_and_resolves(models_dir):
    settings = Settings(models_dir=models_dir)
    a = load_upscaler(scale=2, settings=settings)
    assert a.name == "tiny-x2" and load_upscaler("tiny-x2", settings=settings) is a
    with pytest.raises(InvalidOption, match="no strength"):
        load_upscaler("tiny-x4", strength=0.5, settings=settings)
    with pytest.raises(ModelNotFound):
        load_upscaler("missing", settings=settings)


def test_self_ensemble_averages_the_eight_transforms(x4, photo):
    img = photo[:24, :30]
    seen = []
    ens = x4.upscale(img, ensemble=True, tile=0, progress=lambda d, t: seen.append((d, t)))
    assert ens.shape == (96, 120, 3) and ens.dtype == np.uint8 and seen[-1] == (8, 8)
    # Reference: the same average computed by hand from plain calls.
    acc = np.zeros(ens.shape)
    for k in range(4):
        for flip in (False, True):
            x = np.rot90(img[:, ::-1] if flip else img, k)
            y = np.rot90(x4.upscale(np.ascontiguousarray(x), tile=0).astype(float), -k)
            acc += y[:, ::-1] if flip else y
    assert np.abs(acc / 8 - ens).max() <= 1.0
    assert np.abs(ens.astype(int) - x4.upscale(img, tile=0).astype(int)).max() > 0  # it does change the output


def test_bfloat16_precision_computes_in_bf16_and_stays_close(models_dir, photo):
    import keras

    f32 = Upscaler.from_artifact(models_dir / "tiny-x4", precision="float32", backend="tensorflow")
    bf16 = Upscaler.from_artifact(models_dir / "tiny-x4", precision="bfloat16", backend="tensorflow")
    assert (f32.precision, bf16.precision) == ("float32", "bfloat16")
    assert bf16.model.get_layer("conv_first").kernel.dtype == "bfloat16"  # cast once at load, not per call
    assert bf16.model.get_layer("conv_first").compute_dtype == "bfloat16"
    assert f32.model.get_layer("conv_first").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored after building
    a, b = f32.upscale(photo).astype(int), bf16.upscale(photo).astype(int)
    assert b.dtype == a.dtype and np.abs(a - b).mean() < 2.0
    with pytest.raises(InvalidOption, match="precision must be one of"):
        Upscaler.from_artifact(models_dir / "tiny-x4", precision="int8")


# --- borders: mirrored context, not the network's zero padding ------------------------------------------

@pytest.fixture(scope="module", params=["esrgan-psnr-x4", "esrgan-psnr-x2"])
def shipped(request):
    from model.settings import SHIPPED_MODELS_DIR

    return Upscaler.from_artifact(SHIPPED_MODELS_DIR / request.param, tile_pad=16)


def test_mirrored_edges_are_narrow_except_on_tiny_images(models_dir):
    """The edge mirror costs work: a 64x48 pass runs on 72x56 (edge_pad 4), not on 96x80; images under 32
    pixels get enough mirrored context for the network to see 32."""
    up = Upscaler.from_artifact(models_dir / "tiny-x4", tile_pad=16, edge_pad=4, precision="float32")
    seen = []
    forward = up._forward
    up._forward = lambda x: seen.append(tuple(x.shape[1:3])) or forward(x)
    rng = np.random.default_rng(0)
    up.upscale(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8), tile=0)
    up.upscale(rng.integers(0, 256, (1, 40, 3), dtype=np.uint8), tile=0)
    assert seen == [(72, 56), (33, 48)]
    # tiles see the same edges as one pass: their joins and borders match it
    img = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    assert np.abs(up.upscale(img, tile=32).astype(int) - up.upscale(img, tile=0).astype(int)).max() <= 1


def test_tiny_and_flat_images_keep_their_colours(shipped):
    """Without mirrored borders a 1x1 (250,10,120) came out (67,33,35) and flat images' corners drifted."""
    one = shipped.upscale(np.array([[[250, 10, 120]]], np.uint8))
    assert one.shape == (shipped.scale, shipped.scale, 3)
    assert np.abs(one.astype(int) - (250, 10, 120)).max() <= 3
    flat = np.full((64, 48, 3), (40, 160, 220), np.uint8)
    for tile in (0, 32):
        assert np.abs(shipped.upscale(flat, tile=tile).astype(int) - flat[0, 0]).max() <= 3
    gray16 = np.full((5, 3), 50_000, np.uint16)
    assert np.abs(shipped.upscale(gray16).astype(int) - 50_000).max() <= 3 * 257


@pytest.mark.parametrize("shape", [(1, 600), (600, 1), (2, 300)])
def test_strips_are_upscaled_like_their_interior(shipped, shape):
    """1xN strips (all border) were 17 dB from bicubic; smooth strips now match it closely."""
    t = np.linspace(0, 1, max(shape))
    line = np.stack([127 + 100 * np.sin(t * 20), 127 + 100 * np.cos(t * 13), 90 + 50 * np.sin(t * 7)], -1)
    img = np.broadcast_to(line.reshape(1, -1, 3) if shape[0] <= 2 else line.reshape(-1, 1, 3), shape + (3,))
    img = np.ascontiguousarray(img).astype(np.uint8)
    out = shipped.upscale(img).astype(float)
    ref = cv2.resize(img, (shape[1] * shipped.scale, shape[0] * shipped.scale), interpolation=cv2.INTER_CUBIC)
    psnr = 10 * np.log10(255**2 / ((out - ref) ** 2).mean())
    assert psnr > 35, f"{psnr:.1f} dB"
