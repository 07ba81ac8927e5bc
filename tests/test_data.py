"""The training input pipeline and offline preparation, on small images made in the test."""
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from training.data import bicubic_downscale, make_dataset
from training.images import list_images
from training.imresize import imresize


def photos(folder, sizes=((70, 90), (64, 64), (100, 72)), seed=0):
    """Small photo-like images (scikit-image's astronaut, resized and offset) as PNG/BMP files."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    base = data.astronaut()
    rng = np.random.default_rng(seed)
    paths = []
    for i, (h, w) in enumerate(sizes):
        y, x = rng.integers(0, 200, 2)
        img = np.asarray(Image.fromarray(base[y:y + 300, x:x + 300]).resize((w, h), Image.BICUBIC))
        path = folder / f"img{i}.{'bmp' if i % 2 else 'png'}"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def benchmark(root, sizes, scale):
    """A benchmark-style folder: ``HR/`` photos (sizes need not be multiples of the scale, as raw
    benchmark HR often are not) and ``LR/`` made from them by MATLAB bicubic, same names."""
    (root / "LR").mkdir(parents=True, exist_ok=True)
    for path in photos(root / "HR", sizes=sizes):
        hr = np.asarray(Image.open(path))
        hr = hr[: hr.shape[0] // scale * scale, : hr.shape[1] // scale * scale]
        Image.fromarray(imresize(hr, 1 / scale)).save(root / "LR" / f"{path.stem}.png")
    return root


def to_uint8(x):
    return np.round(np.asarray(x) * 255).astype(np.uint8)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_in_graph_bicubic_equals_matlab_imresize(scale):
    rng = np.random.default_rng(scale)
    hr = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    hr[:24] = 255  # saturated areas exercise the rounding/clipping between the two passes
    got = bicubic_downscale(tf.constant(hr), scale).numpy()
    np.testing.assert_array_equal(got.astype(np.uint8), imresize(hr, 1 / scale))


def test_listing_skips_small_images_and_non_images(tmp_path):
    photos(tmp_path, sizes=((70, 90), (20, 90)))
    (tmp_path / "notes.png").write_text("not an image")
    assert [p.split("/")[-1] for p in list_images(tmp_path, min_size=32)] == ["img0.png"]
    with pytest.raises(ValueError, match="no usable images"):
        list_images(tmp_path, min_size=500)


def test_hr_folder_pipeline_shapes_and_lr_is_bicubic_of_augmented_hr(tmp_path):
    photos(tmp_path)
    ds = make_dataset(tmp_path, scale=4, crop=32, batch_size=4, seed=3)
    lr, hr = next(iter(ds))
    assert lr.shape == (4, 8, 8, 3) and hr.shape == (4, 32, 32, 3)
    assert lr.dtype == tf.float32 and 0 <= float(tf.reduce_min(hr)) and float(tf.reduce_max(hr)) <= 1
    for i in range(4):  # every LR is exactly MATLAB-bicubic of its (flipped/rotated) HR: aligned pairs
        np.testing.assert_array_equal(to_uint8(lr[i]), imresize(to_uint8(hr[i]), 0.25))


def test_augmentation_varies_and_is_seeded(tmp_path):
    photos(tmp_path, sizes=((40, 40),))  # one image, crop = image: only flips/rotations differ
    first = [to_uint8(h) for _, h in make_dataset(tmp_path, scale=2, crop=40, batch_size=1, seed=1).take(12)]
    again = [to_uint8(h) for _, h in make_dataset(tmp_path, scale=2, crop=40, batch_size=1, seed=1).take(12)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert len({a.tobytes() for a in first}) > 2


def test_paired_folders_stay_aligned_through_crop_flip_rotate(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "LR").mkdir()
    (tmp_path / "HR").mkdir()
    for i, (h, w) in enumerate([(20, 30), (24, 16)]):
        lr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        # HR = nearest-neighbour x2 of LR: any misalignment or unequal flip/rotation breaks hr[::2, ::2] == lr
        Image.fromarray(lr).save(tmp_path / "LR" / f"p{i}.png")
        Image.fromarray(lr.repeat(2, 0).repeat(2, 1)).save(tmp_path / "HR" / f"p{i}.png")
    ds = make_dataset(tmp_path / "HR", lr_dir=tmp_path / "LR", scale=2, crop=24, batch_size=3, seed=5)
    for lr, hr in ds.take(4):
        assert lr.shape == (3, 12, 12, 3) and hr.shape == (3, 24, 24, 3)
        np.testing.assert_array_equal(to_uint8(hr)[:, ::2, ::2], to_uint8(lr))


def test_start_resumes_the_same_sample_stream(tmp_path):
    photos(tmp_path)
    full = [to_uint8(h) for _, h in make_dataset(tmp_path, scale=2, crop=16, batch_size=2, seed=7).take(5)]
    resumed = [to_uint8(h) for _, h in make_dataset(tmp_path, scale=2, crop=16, batch_size=2, seed=7, start=6).take(2)]
    np.testing.assert_array_equal(resumed[0], full[3])
    np.testing.assert_array_equal(resumed[1], full[4])


def test_realworld_degradation_gives_degraded_lr(tmp_path):
    photos(tmp_path)
    bicubic = make_dataset(tmp_path, scale=4, crop=32, batch_size=4, seed=2)
    real = make_dataset(tmp_path, scale=4, crop=32, batch_size=4, seed=2, degradation="realworld")
    (lr_b, hr_b), (lr_r, hr_r) = next(iter(bicubic)), next(iter(real))
    np.testing.assert_array_equal(hr_b.numpy(), hr_r.numpy())  # same crops, other degradation
    assert lr_r.shape == lr_b.shape and 0 <= float(tf.reduce_min(lr_r)) and float(tf.reduce_max(lr_r)) <= 1
    assert float(tf.reduce_mean(tf.abs(lr_r - lr_b))) > 0.01
    with pytest.raises(ValueError, match="degradation"):
        make_dataset(tmp_path, scale=4, crop=32, batch_size=4, degradation="jpeg-only")
    # the same seed gives the same pairs (resumable runs); usm adds the sharpened target
    again = make_dataset(tmp_path, scale=4, crop=32, batch_size=4, seed=2, degradation="realworld")
    np.testing.assert_array_equal(next(iter(again))[0].numpy(), lr_r.numpy())
    lr_u, target, hr_u = next(iter(make_dataset(tmp_path, scale=4, crop=32, batch_size=4, seed=2,
                                                degradation="realworld", usm=True)))
    np.testing.assert_array_equal(hr_u.numpy(), hr_r.numpy())
    np.testing.assert_array_equal(lr_u.numpy(), lr_r.numpy())
    assert target.shape == hr_u.shape and not np.array_equal(target.numpy(), hr_u.numpy())


def test_prepare_makes_a_deterministic_realworld_validation_set(tmp_path):
    from training.config import PrepareConfig
    from training.prepare import prepare

    photos(tmp_path / "src", sizes=((64, 64), (72, 80)))
    for out in ("a", "b"):
        prepare(PrepareConfig(src=str(tmp_path / "src"), out=str(tmp_path / out), scale=4,
                              degradation="realworld", seed=3), progress=False)
    for name in ("img0.png", "img1.png"):
        a = np.asarray(Image.open(tmp_path / "a/LR" / name))
        np.testing.assert_array_equal(a, np.asarray(Image.open(tmp_path / "b/LR" / name)))
        hr = np.asarray(Image.open(tmp_path / "a/HR" / name))
        assert a.shape == (hr.shape[0] // 4, hr.shape[1] // 4, 3)
        assert np.abs(a.astype(int) - imresize(hr, 0.25).astype(int)).mean() > 1  # not the bicubic LR


def test_prepare_writes_lr_and_aligned_augmented_patches(tmp_path):
    from training.config import PrepareConfig
    from training.metrics import psnr
    from training.prepare import prepare

    photos(tmp_path / "src", sizes=((70, 90), (101, 66)))
    counts = prepare(PrepareConfig(src=str(tmp_path / "src"), out=str(tmp_path / "out"), scale=2, crops=3,
                                   crop=32, seed=1), progress=False)
    assert counts == {"images": 2, "patches": 6, "too_small": 0}
    hr = np.asarray(Image.open(tmp_path / "out/HR/img1.png"))
    lr = np.asarray(Image.open(tmp_path / "out/LR/img1.png"))
    assert hr.shape == (100, 66, 3)  # mod crop to a multiple of the scale
    np.testing.assert_array_equal(lr, imresize(hr, 0.5))
    for hr_path in sorted((tmp_path / "out/patches/HR").iterdir()):
        hp = np.asarray(Image.open(hr_path))
        lp = np.asarray(Image.open(tmp_path / "out/patches/LR" / hr_path.name))
        assert hp.shape == (32, 32, 3) and lp.shape == (16, 16, 3)
        # Aligned: the LR patch matches the HR patch downscaled (borders aside), far better than
        # the same LR patch un-rotated or un-flipped would.
        ref = imresize(hp, 0.5)
        assert psnr(lp, ref, crop=3) > 35
        assert psnr(lp, ref, crop=3) > psnr(np.rot90(lp).copy(), ref, crop=3) + 5
        assert psnr(lp, ref, crop=3) > psnr(lp[:, ::-1].copy(), ref, crop=3) + 5
