"""The torch backend's distillation terms that the tf backend had first: the grid, overshoot and chroma L1s,
each the same as TensorFlow's on the same inputs."""
import numpy as np
import pytest
import torch

from training.config import TrainConfig
from training import torch_distill


def nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def tf_term(name: str, *args):
    import tensorflow as tf

    from training import losses

    return float(getattr(losses, name)(*(tf.constant(a) if isinstance(a, np.ndarray) else a for a in args)))


@pytest.mark.parametrize("name, extra", [("grid_l1", (4,)), ("grid_l1", (2,)), ("overshoot_l1", ()),
                                         ("chroma_l1", ())])
def test_each_loss_term_is_tensorflows(name, extra):
    rng = np.random.default_rng(0)
    target = rng.random((2, 32, 24, 3), dtype=np.float32)
    sr = (target + 0.3 * rng.standard_normal(target.shape)).astype(np.float32)
    sr[:, ::extra[0] if extra else 4] += 0.2  # stripes on the grid too
    expected = tf_term(name, sr, target, *extra)
    got = getattr(torch_distill, name)(nchw(sr), nchw(target), *extra).item()
    assert expected > 1e-3 and abs(got - expected) < 1e-5, (got, expected)


@pytest.mark.parametrize("field, term", [("grid_weight", lambda sr, t: torch_distill.grid_l1(sr, t, 4)),
                                         ("overshoot_weight", torch_distill.overshoot_l1),
                                         ("chroma_weight", torch_distill.chroma_l1)])
def test_the_distillation_loss_holds_each_term_at_its_weight(tmp_path, field, term):
    sr, target, hr = (torch.rand(2, 3, 32, 32) for _ in range(3))
    base = dict(backend="torch", stage="distill", teacher="t.param", data=str(tmp_path), perceptual_weight=0.0)
    plain = torch_distill.distill_loss(TrainConfig(**base), "cpu")(sr, target, hr)
    weighted = torch_distill.distill_loss(TrainConfig(**base, **{field: 3.0}), "cpu")(sr, target, hr)
    assert abs((weighted - plain).item() - 3.0 * term(sr, target).item()) < 1e-5 and term(sr, target) > 1e-3
