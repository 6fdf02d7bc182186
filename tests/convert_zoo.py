"""The converter's zoo: every torchvision CNN builder and one small model per timm CNN family.

Shared by ``tests/interop/test_convert_zoo.py`` (a sweep) and ``tools/convert_report.py`` (the table in
``docs/converter.md``). :func:`measure` converts a model at random initialisation and returns how far
fcnn's float32 eval logits (and, when asked, train-mode gradients) are from torch run in float64, next to
torch's own float32 distance.
"""

from __future__ import annotations

import copy

import numpy as np

from torchvision_cpu import import_torchvision

torchvision = import_torchvision()

import timm  # noqa: E402  (after torchvision's import helper)
import torch  # noqa: E402

TRANSFORMERS = ("vit_", "swin_", "maxvit_")

# Input side per model (default 32): the smallest size the network accepts comfortably.
SIZES = {"inception_v3": 80, "googlenet": 48, "alexnet": 64, "hrnet_w18_small": 64, "xception41": 64,
         "dla46_c": 64, "cspresnet50": 64, "dpn48b": 64}

# One small representative per timm CNN family: family -> timm model name.
TIMM_FAMILIES = {
    "ResNet": "resnet18", "ResNet-D": "resnet18d", "SE-ResNet": "seresnet18", "ECA-ResNet": "ecaresnet26t",
    "SK-ResNet": "skresnet18", "ResNeSt": "resnest14d", "Res2Net": "res2net50_14w_8s",
    "EfficientNet": "efficientnet_b0", "MixNet": "mixnet_s", "MobileNetV3": "mobilenetv3_small_050",
    "MobileNetV4": "mobilenetv4_conv_small", "LCNet": "lcnet_050", "GhostNet": "ghostnet_050", "ReXNet": "rexnet_100",
    "ConvNeXt": "convnext_atto", "RegNet": "regnetx_002", "DenseNet": "densenet121", "DLA": "dla46_c",
    "DPN": "dpn48b", "CSPNet": "cspresnet50", "VoVNet": "ese_vovnet19b_slim_dw", "DarkNet": "darknet17",
    "HRNet": "hrnet_w18_small", "Xception": "xception41", "RepVGG": "repvgg_a0", "NFNet": "nf_resnet26",
    "NFNet-F": "dm_nfnet_f0",
}


def torchvision_builders() -> list[str]:
    """torchvision's classification builders without the transformers (ViT, Swin, MaxViT)."""
    return [n for n in torchvision.models.list_models(module=torchvision.models) if not n.startswith(TRANSFORMERS)]


def build(source: str, name: str):
    """A randomly initialised model with non-trivial BatchNorm statistics and no dropout, in eval mode."""
    torch.manual_seed(0)
    if source == "torchvision":
        kwargs = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}
        module = torchvision.models.get_model(name, **kwargs)
    else:
        module = timm.create_model(name, pretrained=False)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                if m.weight is not None:
                    m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                    m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
            if isinstance(m, (torch.nn.Dropout, torchvision.ops.StochasticDepth)) or type(m).__name__ == "DropPath":
                m.p = 0.0
                if hasattr(m, "drop_prob"):
                    m.drop_prob = 0.0
            if hasattr(m, "drop_rate") and isinstance(m.drop_rate, float):
                m.drop_rate = 0.0
    return module.eval()


def relative_errors(got, t32, t64) -> tuple[float, float]:
    """``(fcnn, torch float32)`` max-abs distances from the float64 reference, relative to its max-abs value."""
    got, t32, t64 = (np.asarray(a, np.float64) for a in (got, t32, t64))
    scale = max(float(np.abs(t64).max()), 1e-30)
    return float(np.abs(got - t64).max()) / scale, float(np.abs(t32 - t64).max()) / scale


def measure(module, size: int, train: bool, batch: int = 2) -> dict:
    """Convert ``module`` and compare with torch; ``train`` adds one train-mode step's gradients.

    Returns ``eval``/``eval_torch32`` (relative errors of the logits) and, with ``train``, ``grad``/
    ``grad_torch32``: the largest relative error over all parameters' gradients, each parameter's error
    measured against the largest gradient of the model (parameters whose gradient vanishes in exact
    arithmetic are pure rounding noise on both sides) — and ``train_out``/``train_out_torch32``.
    """
    import jax
    import jax.numpy as jnp

    from fcnn.interop import torch as fit

    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(2))
    model, params, state = fit.convert(module, x)
    with torch.no_grad():
        r32 = module(x).numpy()
    xj = jnp.asarray(x.numpy())
    got = jax.jit(lambda p, s, x: model.apply(p, s, x, train=False)[0])(params, state, xj)
    result = {}
    if train:
        w = np.random.RandomState(3).standard_normal(r32.shape).astype(np.float32)

        def loss(p, s, x, w):
            out, _ = model.apply(p, s, x, train=True, rng=jax.random.key(0))
            return jnp.sum(out * w), out

        grads, out = jax.jit(jax.grad(loss, has_aux=True))(params, state, xj, w)
        grads = _flat(grads)
    del params, state
    # float64 twin: a copy when the float32 module is still needed for its own gradients
    module64 = copy.deepcopy(module).double() if train else module.double()
    with torch.no_grad():
        r64 = module64(x.double()).numpy()
    result["eval"], result["eval_torch32"] = relative_errors(got, r32, r64)
    if train:
        t_out32, g32 = _torch_grads(module, x, w)
        t_out64, g64 = _torch_grads(module64, x.double(), w.astype(np.float64))
        result["train_out"], result["train_out_torch32"] = relative_errors(out, t_out32, t_out64)
        scale = max(float(np.abs(v).max()) for v in g64.values())
        errs = [(float(np.abs(grads[k] - g64[k]).max()) / scale, float(np.abs(g32[k] - g64[k]).max()) / scale)
                for k in g64]
        result["grad"] = max(e for e, _ in errs)
        result["grad_torch32"] = max(e for _, e in errs)
    return result


def _torch_grads(module, x, w):
    module.train()
    for p in module.parameters():
        p.grad = None
    out = module(x)
    (out * torch.from_numpy(w)).sum().backward()
    module.eval()
    return out.detach().numpy(), {k: p.grad.detach().numpy() for k, p in module.named_parameters()}


def _flat(tree, prefix=""):
    out = {}
    for k, v in tree.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: np.asarray(v)})
    return out
