"""Inference programs that hold a model's weights: :func:`freeze`.

``fcnn.freeze(model, params, state)`` is the counterpart of
``torch.jit.freeze``: the model's eval-mode forward compiled with its
parameters and buffers as constants of the program, so XLA computes once,
at compile time, everything that depends on them alone:

- every convolution weight laid out as the convolution reads it (XLA:CPU's
  convolutions take ``(kH, kW, I, O)`` kernels; with the weights as
  arguments, each is transposed from torch's ``(O, I, kH, kW)`` on every
  call, about a third of ResNet-50's time at batch 1);
- batch norm's per-channel scale and shift (``weight · rsqrt(var + eps)``),
  left as one multiply-add that XLA fuses into the activation after the
  convolution.

Folding batch norm into the convolution's weights (torch's
``fuse_conv_bn_eval``) is therefore not done: on top of freezing, it saves
nothing measurable on XLA:CPU (``benchmarks/README.md``), and the values
would then differ from the unfolded model's by the rounding of the folded
weights.
"""

from __future__ import annotations

from collections.abc import Callable

from fcnn import xla
from fcnn.nn.module import Layer, check_apply_args


def freeze(model: Layer, params, state, *, platform: str | None = None, **jit_kwargs) -> Callable:
    """``model.apply(params, state, *inputs, train=False)[0]`` compiled with ``params`` and ``state`` as constants.

    Returns ``forward(*inputs) -> output``, a :func:`fcnn.jit` function (one
    compiled program per input shape and dtype; ``platform`` and
    ``jit_kwargs`` as :func:`fcnn.jit` takes them). The outputs equal the
    model's eval-mode outputs to float rounding: XLA evaluates the
    parameter-only parts (weight layouts, batch norm's scale and shift)
    ahead of time, in a possibly different order.

    ``params``/``state`` are checked against the model here, so a mismatch
    is reported by layer path before anything is traced. The program keeps
    its own copy of the weights (the model's size again in memory, and in
    the persistent compilation cache), and compiling takes longer than with
    the weights as arguments (XLA folds the constants); new weights need a
    new ``freeze``. Use it for inference with fixed weights; keep
    ``fcnn.jit(lambda p, s, x: model.apply(p, s, x)[0])`` where the weights
    change between calls.

    Example::

        net = fcnn.models.get("resnet50")
        params, state = fcnn.interop.torch.load_state_dict(net, torchvision_model.state_dict())
        predict = fcnn.freeze(net, params, state)
        logits = predict(images)          # (N, 3, 224, 224) -> (N, 1000)
    """
    if not isinstance(model, Layer):
        raise TypeError(f"freeze: model must be an fcnn layer or model (fcnn.nn / fcnn.models), "
                        f"got {type(model).__name__}")
    check_apply_args(model, params, state, False, None)

    def forward(*inputs):
        return model.apply(params, state, *inputs, train=False)[0]

    return xla.jit(forward, platform=platform, **jit_kwargs)
