"""Every torchvision CNN builder and one model per timm CNN family, converted and compared with torch (sweep).

Eval logits for every model; one train-mode step's gradients for the models in
``tools/convert_report.py``'s ``TRAIN`` set (compiling a depthwise network's gradient takes minutes on
the CPU). fcnn's float32 must be as close to torch's float64 as torch's own float32 is.
"""

import pytest

import convert_zoo

pytestmark = pytest.mark.sweep

TRAIN = {"resnet18", "squeezenet1_1", "shufflenet_v2_x0_5", "densenet121", "googlenet", "regnet_x_400mf",
         "timm:resnet18", "timm:seresnet18", "timm:convnext_atto", "timm:repvgg_a0", "timm:nf_resnet26"}
CASES = [("torchvision", n) for n in convert_zoo.torchvision_builders()] + \
        [("timm", n) for n in convert_zoo.TIMM_FAMILIES.values()]


def _check(result, key, slack=8.0):
    err, torch_err = result[key], result[f"{key}_torch32"]
    assert err <= slack * torch_err + 2e-6, f"{key}: fcnn {err:.3g} vs torch float32 {torch_err:.3g}"


@pytest.mark.parametrize("source, name", CASES, ids=[f"{s}:{n}" for s, n in CASES])
def test_converted_model_matches_torch(source, name):
    module = convert_zoo.build(source, name)
    train = (name if source == "torchvision" else f"timm:{name}") in TRAIN
    result = convert_zoo.measure(module, convert_zoo.SIZES.get(name, 32), train)
    _check(result, "eval")
    if train:
        _check(result, "train_out")
        _check(result, "grad")
