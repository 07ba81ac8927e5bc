"""Every architecture of the registry (model.architectures) built by each of its runtimes, Keras, OpenVINO
and PyTorch, from one set of weights: the same output. The engine's sizes come from the registry too."""
from __future__ import annotations

import numpy as np
import pytest

from model.architectures import ARCHITECTURES, architecture, openvino_archs
from model.artifacts import assign_weights, model_weights

# Small instances of every registered architecture: a new architecture adds its cases here.
EXAMPLES = {
    "rrdbnet": [{"scale": 4}, {"scale": 2}, {"scale": 2, "pixel_unshuffle": True}],
    "srvgg": [{"scale": 4, "num_feat": 8, "num_conv": 3}, {"scale": 2, "num_feat": 8, "num_conv": 2}],
    "srresnet": [{"scale": 4, "num_block": 1, "num_feat": 8}],
}
RUNTIMES = {"rrdbnet": {"keras", "openvino", "torch"}, "srvgg": {"keras", "openvino", "torch"}, "srresnet": {"keras"}}
TINY = {"rrdbnet": {"num_block": 1, "num_feat": 16, "num_grow_ch": 8}}
CASES = [(arch, {**TINY.get(arch, {}), **params}) for arch, cases in EXAMPLES.items() for params in cases]


def test_every_architecture_has_examples_and_a_name_check():
    assert set(EXAMPLES) == set(RUNTIMES) == set(ARCHITECTURES)
    assert openvino_archs() == ("rrdbnet", "srvgg")  # srresnet runs on TensorFlow only
    with pytest.raises(ValueError, match="unknown architecture 'nope'; known: rrdbnet, srresnet, srvgg"):
        architecture("nope")


def shared_weights(arch: str, params: dict) -> tuple[dict[str, np.ndarray], object]:
    """Weights in the artifact's (Keras) layout, and the PyTorch network holding the same ones (if any)."""
    import keras

    entry = architecture(arch)
    if entry.torch is not None:  # start from PyTorch: the converter's mapping gives the Keras layout
        import torch

        from model.convert import detect, to_keras

        torch.manual_seed(3)
        net = entry.torch(**params).eval()
        with torch.no_grad():  # PReLU slopes differ per channel (PyTorch starts them all at 0.25): a swapped axis shows
            for module in net.modules():
                if isinstance(module, torch.nn.PReLU):
                    module.weight.uniform_(0.0, 0.5)
        state = {k: v.numpy() for k, v in net.state_dict().items()}
        layout = detect(state)
        assert {k: v for k, v in layout.params.items() if k != "scale"} == \
            {k: v for k, v in params.items() if k != "scale" and (k != "pixel_unshuffle" or v)}
        keras_weights = to_keras(state, layout)
        if not layout.unshuffled_input:  # and back, as a torch run reads an artifact (--init): the same tensors
            from model.convert.layouts import from_keras

            back = from_keras(keras_weights, layout)
            assert set(back) == set(state) and all(np.array_equal(back[k], state[k]) for k in state)
        return keras_weights, net
    keras.utils.set_random_seed(3)
    weights = model_weights(entry.keras(**params))
    rng = np.random.default_rng(0)
    for key in weights:  # PReLU slopes differ per channel and biases are non-zero: a swapped axis shows
        weights[key] = weights[key] + rng.normal(0, 0.05, weights[key].shape).astype(np.float32)
    return weights, None


IDS = [f"{a}-x{p['scale']}" + ("-unshuffle" if p.get("pixel_unshuffle") else "") for a, p in CASES]


@pytest.mark.parametrize("arch,params", CASES, ids=IDS)
def test_every_runtime_gives_the_same_output_from_the_same_weights(arch, params):
    entry = architecture(arch)
    weights, net = shared_weights(arch, params)
    x = np.random.default_rng(1).random((1, 22, 30, 3), np.float32)  # even (unshuffle), not square
    x_in = 2 * x - 1  # the networks' own input, for an artifact whose value range is [-1, 1]
    model = entry.keras(**params)
    assign_weights(model, weights)
    outputs = {"keras": np.asarray(model(x_in))}
    if entry.openvino is not None:
        import openvino as ov

        from model.openvino_graph import build_model

        graph = build_model([(entry.openvino, params, weights, 1.0)], value_range=(-1.0, 1.0), clip=False)
        compiled = ov.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        outputs["openvino"] = 2 * compiled([x])[0] - 1  # the graph maps [0, 1] to the value range and back
    if net is not None:
        import torch

        with torch.no_grad():
            outputs["torch"] = net(torch.from_numpy(x_in.transpose(0, 3, 1, 2).copy())).numpy().transpose(0, 2, 3, 1)
    assert set(outputs) == RUNTIMES[arch]
    keras_out = outputs.pop("keras")
    assert keras_out.shape == (1, 22 * params["scale"], 30 * params["scale"], 3) and keras_out.std() > 1e-3
    for runtime, out in outputs.items():
        assert np.abs(out - keras_out).max() < 1e-4, runtime


def test_the_engine_sizes_tiles_and_pads_from_the_registry():
    rrdb = architecture("rrdbnet")
    shipped = {"scale": 4, "num_block": 6, "num_feat": 32, "num_grow_ch": 16}
    assert rrdb.activation_bytes(shipped, 4) == 4 * 3 * 32 * 16  # the upsampled features are the widest
    assert rrdb.activation_bytes({**shipped, "num_feat": 64, "num_grow_ch": 32}, 1) == 4 * 6 * 192
    unshuffled = {**shipped, "scale": 2, "pixel_unshuffle": True}
    assert rrdb.activation_bytes(unshuffled, 2) == 4 * max(6 * 96 / 4, 3 * 32 * 4)
    assert rrdb.multiple(unshuffled) == 2 and rrdb.multiple(shipped) == 1
    assert architecture("srvgg").multiple({"scale": 4}) == 1
