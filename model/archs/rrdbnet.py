"""RRDBNet, the ESRGAN generator (Wang et al. 2018, Fig. 4), laid out like BasicSR's rrdbnet_arch.py.

Layer names follow BasicSR's parameter names (``body.3.rdb2.conv5`` -> ``body_3_rdb2_conv5``) so that
PyTorch checkpoints map one to one. Inputs and outputs are RGB in [0, 1].
"""
import keras

from .layers import PixelUnshuffle, ScaledResidual, conv, lrelu


def residual_dense_block(x, num_feat: int, num_grow_ch: int, name: str):
    """Five 3x3 convs, each seeing the concatenation of the block input and all earlier outputs."""
    feats = [x]
    for j in range(1, 5):
        inp = feats[0] if j == 1 else keras.layers.Concatenate(name=f"{name}_cat{j}")(feats)
        feats.append(lrelu()(conv(num_grow_ch, f"{name}_conv{j}")(inp)))
    out = conv(num_feat, f"{name}_conv5")(keras.layers.Concatenate(name=f"{name}_cat5")(feats))
    return ScaledResidual(0.2, name=f"{name}_res")([out, x])


def rrdb(x, num_feat: int, num_grow_ch: int, name: str):
    """Residual-in-residual dense block: three RDBs and a 0.2-scaled skip around them."""
    out = x
    for k in (1, 2, 3):
        out = residual_dense_block(out, num_feat, num_grow_ch, f"{name}_rdb{k}")
    return ScaledResidual(0.2, name=f"{name}_res")([out, x])


def build_rrdbnet(
    scale: int = 4,
    num_block: int = 23,
    num_feat: int = 64,
    num_grow_ch: int = 32,
    num_in_ch: int = 3,
    num_out_ch: int = 3,
    pixel_unshuffle: bool = False,
    name: str = "rrdbnet",
) -> keras.Model:
    """``pixel_unshuffle`` (x2 only) is Real-ESRGAN's x2 variant: the body runs at half resolution on
    space-to-depth input and two x2 upsampling stages follow, as in the x4 model."""
    if scale not in (2, 4):
        raise ValueError(f"RRDBNet scale must be 2 or 4, got {scale}")
    if pixel_unshuffle and scale != 2:
        raise ValueError("pixel_unshuffle applies to scale 2 only")
    inp = keras.Input(shape=(None, None, num_in_ch), name="lr")
    x = PixelUnshuffle(2, name="unshuffle")(inp) if pixel_unshuffle else inp
    feat = conv(num_feat, "conv_first")(x)
    body = feat
    for i in range(num_block):
        body = rrdb(body, num_feat, num_grow_ch, f"body_{i}")
    feat = keras.layers.Add(name="trunk_add")([feat, conv(num_feat, "conv_body")(body)])
    stages = 2 if pixel_unshuffle else scale // 2
    for s in range(1, stages + 1):
        feat = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{s}")(feat)
        feat = lrelu()(conv(num_feat, f"conv_up{s}")(feat))
    out = conv(num_out_ch, "conv_last")(lrelu()(conv(num_feat, "conv_hr")(feat)))
    return keras.Model(inp, out, name=name)
