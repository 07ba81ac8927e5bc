import numpy as np
import pytest

from model.archs import build_generator
from model.archs.discriminator import build_discriminator


def test_rrdbnet_paper_size_parameter_count():
    # The ESRGAN paper's generator: 23 RRDBs, 64 features, growth 32, x4.
    model = build_generator("rrdbnet", dict(scale=4, num_block=23, num_feat=64, num_grow_ch=32))
    assert model.count_params() == 16_697_987


@pytest.mark.parametrize("scale,unshuffle", [(4, False), (2, False), (2, True)])
def test_rrdbnet_output_shape_any_input_size(scale, unshuffle):
    model = build_generator("rrdbnet", dict(scale=scale, num_block=1, num_feat=8, num_grow_ch=4,
                                            pixel_unshuffle=unshuffle))
    for h, w in [(6, 10), (14, 8)]:
        out = model(np.random.rand(1, h, w, 3).astype("float32"))
        assert out.shape == (1, h * scale, w * scale, 3)


def test_rrdbnet_layer_names_follow_basicsr():
    model = build_generator("rrdbnet", dict(scale=4, num_block=2, num_feat=8, num_grow_ch=4))
    names = {layer.name for layer in model.layers if layer.weights}
    assert {"conv_first", "body_1_rdb3_conv5", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last"} <= names
    assert "conv_up3" not in names


def test_rrdbnet_rejects_bad_config():
    with pytest.raises(ValueError):
        build_generator("rrdbnet", dict(scale=3))
    with pytest.raises(ValueError):
        build_generator("rrdbnet", dict(scale=4, pixel_unshuffle=True))
    with pytest.raises(ValueError, match="unknown architecture"):
        build_generator("nope", {})


def test_srresnet_tanh_output_and_shape():
    model = build_generator("srresnet", dict(scale=4, num_block=2, num_feat=16))
    out = np.asarray(model(np.random.rand(1, 8, 9, 3).astype("float32") * 2 - 1))
    assert out.shape == (1, 32, 36, 3)
    assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("patch", [96, 128])
def test_discriminator_sized_by_patch(patch):
    d = build_discriminator(patch, num_feat=8)
    assert d(np.zeros((2, patch, patch, 3), "float32")).shape == (2, 1)
    # Five stride-2 stages: the dense head sees (patch/32)^2 * 8*num_feat features.
    assert d.get_layer("linear1").kernel.shape[0] == (patch // 32) ** 2 * 64
    with pytest.raises(ValueError):
        build_discriminator(100)


def test_precision_and_the_policy_in_force():
    import keras

    from model.archs import dtype_policy

    params = dict(scale=2, num_block=1, num_feat=8, num_grow_ch=4)
    with dtype_policy("mixed_float16"):  # a training run's policy reaches the models it builds
        assert build_generator("rrdbnet", params).get_layer("conv_first").compute_dtype == "float16"
        assert build_generator("rrdbnet", params, "float32").get_layer("conv_first").compute_dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"
    assert build_generator("rrdbnet", params, "bfloat16").get_layer("conv_last").compute_dtype == "bfloat16"


def test_srvgg_halved_is_the_x4_output_area_downscaled():
    import cv2

    from model.archs.srvgg import halve_scale
    from model.artifacts import assign_weights, model_weights

    x4 = build_generator("srvgg", {"scale": 4, "num_feat": 8, "num_conv": 2})
    rng = np.random.default_rng(1)
    weights = {k: v + rng.normal(0, 0.05, v.shape).astype(np.float32) for k, v in model_weights(x4).items()}
    assign_weights(x4, weights)
    x2 = build_generator("srvgg", {"scale": 2, "num_feat": 8, "num_conv": 2})
    assign_weights(x2, halve_scale(weights, num_conv=2, scale=4))
    x = rng.random((1, 10, 12, 3), dtype=np.float32)
    big, half = np.asarray(x4(x))[0], np.asarray(x2(x))[0]
    assert np.abs(big).max() > 0.1  # a real output, not zeros on both sides
    np.testing.assert_allclose(half, cv2.resize(big, (24, 20), interpolation=cv2.INTER_AREA), atol=1e-5)
    with pytest.raises(ValueError, match="no exact"):
        halve_scale(weights, num_conv=2, scale=3)
