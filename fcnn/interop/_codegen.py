"""How the converter writes torch code as fcnn code: leaf modules as ``fcnn.nn`` layers, glue as ``jnp``/``F``.

Two tables drive :mod:`fcnn.interop.convert`:

* :data:`LAYERS` maps a torch module class (matched exactly, so a subclass with a
  forward of its own is traced through instead) to the ``fcnn.nn`` layer that
  computes the same thing and the torch attributes that are its arguments.
* :func:`glue` turns one traced ``call_function`` / ``call_method`` node (torch's
  tensor code between modules) into a Python expression over ``jnp`` and
  ``fcnn.functional``; it returns :class:`Unsupported` when fcnn has no exact
  equivalent.

Only names and numbers are read from torch objects here; torch itself is imported
by the caller.
"""

from __future__ import annotations

import inspect
import keyword
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

from fcnn import functional as F
from fcnn import nn

# ----------------------------------------------------------------------------- values as code


class Code(str):
    """An already formatted expression (a variable name, ``x.shape``, …), written as is."""


@dataclass(frozen=True)
class Unsupported:
    """Why a node or module cannot be converted; collected and reported all at once."""

    what: str


def literal(value, names: Callable[[Any], str] | None = None) -> str:
    """``value`` as Python source: traced values through ``names``, torch dtypes as ``jnp`` dtypes."""
    if isinstance(value, Code):
        return str(value)
    if names is not None and _is_node(value):
        return names(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, tuple):  # torch.Size is a tuple
        inner = ", ".join(literal(v, names) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v, names) for v in value) + "]"
    if isinstance(value, slice):
        return f"slice({literal(value.start, names)}, {literal(value.stop, names)}, {literal(value.step, names)})"
    if value is Ellipsis:
        return "..."
    dtype = _jnp_dtype(value)
    if dtype is not None:
        return f"jnp.{dtype}"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as fcnn code")


def _is_node(value) -> bool:
    return type(value).__name__ == "Node" and type(value).__module__.startswith("torch.fx")


def _jnp_dtype(value) -> str | None:
    if type(value).__name__ == "dtype" and type(value).__module__ == "torch":
        name = str(value).removeprefix("torch.")
        return {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32",
                "bool": "bool_"}.get(name, name)
    return None


def index_code(index, names) -> str:
    """The inside of ``x[...]``: slices as ``a:b``, tuples without parentheses."""
    def one(i):
        if isinstance(i, slice):
            parts = ["" if v is None else literal(v, names) for v in (i.start, i.stop, i.step)]
            return ":".join(parts[:2]) + (f":{parts[2]}" if parts[2] else "")
        if i is None:
            return "None"
        return literal(i, names)
    if isinstance(index, tuple):
        return ", ".join(one(i) for i in index) + ("," if len(index) == 1 else "")
    return one(index)


def identifier(name: str) -> str:
    """A Python identifier close to ``name`` (FX node names, child names)."""
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "v"
    if out[0].isdigit():
        out = "_" + out
    if keyword.iskeyword(out) or keyword.issoftkeyword(out) or out in RESERVED:
        out += "_"
    return out


# Names the generated code uses itself; values never shadow them.
RESERVED = {"self", "ctx", "jnp", "jax", "F", "nn", "build", "super", "range", "list", "tuple",
            "slice", "len", "float", "int", "input", "max", "min", "sum", "abs", "round", "print", "type", "dict"}


# ----------------------------------------------------------------------------- leaf modules

@dataclass
class LayerSpec:
    """A torch module class computed by one ``fcnn.nn`` layer.

    ``positional`` / ``keywords`` name the torch attributes passed to the fcnn
    constructor (keyword arguments equal to the fcnn default are left out);
    ``derived`` computes arguments that torch does not store as attributes.
    """

    fcnn_name: str
    positional: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    derived: dict[str, Callable[[Any], Any]] = field(default_factory=dict)
    check: Callable[[Any], str | None] | None = None


def _has_bias(m) -> bool:
    return getattr(m, "bias", None) is not None


def _same_padding(m):
    """timm's *Same convolutions pad dynamically ('SAME') unless their padding could be made static."""
    return "SAME" if getattr(m, "same_pad", False) else _simplify(m.padding)


def _gamma(m) -> float:
    """timm's ScaledStdConv2d stores ``scale = gamma / sqrt(fan_in)``; its constructor takes gamma."""
    return float(m.scale * m.weight[0].numel() ** 0.5)


_CONV = LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                  ("stride", "padding", "dilation", "groups", "padding_mode"), {"bias": _has_bias})
_CONVT = LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                   ("stride", "padding", "output_padding", "groups", "dilation", "padding_mode"), {"bias": _has_bias})
_BN = LayerSpec("", ("num_features",), ("eps", "momentum", "affine", "track_running_stats"))
_MAXPOOL = LayerSpec("", ("kernel_size",), ("stride", "padding", "dilation", "return_indices", "ceil_mode"))
_AVGPOOL = LayerSpec("", ("kernel_size",), ("stride", "padding", "ceil_mode", "count_include_pad",
                                            "divisor_override"))
_NOARGS = LayerSpec("")
_DROPOUT = LayerSpec("", ("p",))

# torch class path -> spec; the fcnn layer has the torch class's name unless the spec says otherwise.
_TORCH_LAYERS: dict[str, LayerSpec] = {}
for _n in (1, 2, 3):
    _TORCH_LAYERS[f"torch.nn.modules.conv.Conv{_n}d"] = _CONV
    _TORCH_LAYERS[f"torch.nn.modules.conv.ConvTranspose{_n}d"] = _CONVT
    _TORCH_LAYERS[f"torch.nn.modules.batchnorm.BatchNorm{_n}d"] = _BN
    _TORCH_LAYERS[f"torch.nn.modules.instancenorm.InstanceNorm{_n}d"] = _BN
    _TORCH_LAYERS[f"torch.nn.modules.pooling.MaxPool{_n}d"] = _MAXPOOL
    _TORCH_LAYERS[f"torch.nn.modules.pooling.AvgPool{_n}d"] = (
        _AVGPOOL if _n > 1 else LayerSpec("", ("kernel_size",), ("stride", "padding", "ceil_mode", "count_include_pad")))
    _TORCH_LAYERS[f"torch.nn.modules.pooling.AdaptiveAvgPool{_n}d"] = LayerSpec("", ("output_size",))
    _TORCH_LAYERS[f"torch.nn.modules.pooling.AdaptiveMaxPool{_n}d"] = LayerSpec("", ("output_size",),
                                                                                 ("return_indices",))
    _TORCH_LAYERS[f"torch.nn.modules.pooling.LPPool{_n}d"] = LayerSpec("", ("norm_type", "kernel_size"),
                                                                       ("stride", "ceil_mode"))
    _TORCH_LAYERS[f"torch.nn.modules.dropout.Dropout{_n}d"] = _DROPOUT
for _n in (1, 2, 3):
    for _kind in ("Zero", "Reflection", "Replication", "Circular"):
        _TORCH_LAYERS[f"torch.nn.modules.padding.{_kind}Pad{_n}d"] = LayerSpec("", ("padding",))
    _TORCH_LAYERS[f"torch.nn.modules.padding.ConstantPad{_n}d"] = LayerSpec("", ("padding", "value"))
for _name in ("ReLU", "ReLU6", "SiLU", "Hardswish", "Hardsigmoid", "Sigmoid", "Tanh", "Mish", "Softsign",
              "LogSigmoid", "Tanhshrink", "SELU"):
    _TORCH_LAYERS[f"torch.nn.modules.activation.{_name}"] = _NOARGS
_TORCH_LAYERS.update({
    "torch.nn.modules.linear.Linear": LayerSpec("", ("in_features", "out_features"), (), {"bias": _has_bias}),
    "torch.nn.modules.linear.Identity": _NOARGS,
    "torch.nn.modules.flatten.Flatten": LayerSpec("", (), ("start_dim", "end_dim")),
    "torch.nn.modules.flatten.Unflatten": LayerSpec("", ("dim", "unflattened_size")),
    "torch.nn.modules.normalization.GroupNorm": LayerSpec("", ("num_groups", "num_channels"), ("eps", "affine")),
    "torch.nn.modules.normalization.LayerNorm": LayerSpec("", ("normalized_shape",), ("eps", "elementwise_affine"),
                                                          {"bias": _has_bias}),
    "torch.nn.modules.normalization.LocalResponseNorm": LayerSpec("", ("size",), ("alpha", "beta", "k")),
    "torch.nn.modules.activation.LeakyReLU": LayerSpec("", (), ("negative_slope",)),
    "torch.nn.modules.activation.ELU": LayerSpec("", (), ("alpha",)),
    "torch.nn.modules.activation.CELU": LayerSpec("", (), ("alpha",)),
    "torch.nn.modules.activation.GELU": LayerSpec("", (), ("approximate",)),
    "torch.nn.modules.activation.Softplus": LayerSpec("", (), ("beta", "threshold")),
    "torch.nn.modules.activation.Hardtanh": LayerSpec("", (), ("min_val", "max_val")),
    "torch.nn.modules.activation.Threshold": LayerSpec("", ("threshold", "value")),
    "torch.nn.modules.activation.GLU": LayerSpec("", (), ("dim",)),
    "torch.nn.modules.activation.Softmax": LayerSpec("", (), ("dim",)),
    "torch.nn.modules.activation.LogSoftmax": LayerSpec("", (), ("dim",)),
    "torch.nn.modules.activation.Softmax2d": _NOARGS,
    "torch.nn.modules.activation.PReLU": LayerSpec("", (), ("num_parameters",)),
    "torch.nn.modules.dropout.Dropout": _DROPOUT,
    "torch.nn.modules.dropout.AlphaDropout": _DROPOUT,
    "torch.nn.modules.upsampling.Upsample": LayerSpec("", (), ("size", "scale_factor", "mode", "align_corners",
                                                              "recompute_scale_factor")),
    "torch.nn.modules.upsampling.UpsamplingNearest2d": LayerSpec("", (), ("size", "scale_factor")),
    "torch.nn.modules.upsampling.UpsamplingBilinear2d": LayerSpec("", (), ("size", "scale_factor")),
    "torch.nn.modules.pixelshuffle.PixelShuffle": LayerSpec("", ("upscale_factor",)),
    "torch.nn.modules.pixelshuffle.PixelUnshuffle": LayerSpec("", ("downscale_factor",)),
    "torch.nn.modules.channelshuffle.ChannelShuffle": LayerSpec("", ("groups",)),
    "torchvision.ops.stochastic_depth.StochasticDepth": LayerSpec("", ("p", "mode")),
    "torchvision.ops.misc.Permute": LayerSpec("", ("dims",)),
    "torch.nn.modules.fold.Fold": LayerSpec("", ("output_size", "kernel_size"), ("dilation", "padding", "stride")),
    "torch.nn.modules.fold.Unfold": LayerSpec("", ("kernel_size",), ("dilation", "padding", "stride")),
    "timm.layers.conv2d_same.Conv2dSame": LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                                                    ("stride", "dilation", "groups"), {"bias": _has_bias}),
    "timm.layers.std_conv.StdConv2d": LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                                                ("stride", "padding", "dilation", "groups", "eps"),
                                                {"bias": _has_bias}),
    "timm.layers.std_conv.StdConv2dSame": LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                                                    ("stride", "dilation", "groups", "eps"),
                                                    {"bias": _has_bias, "padding": _same_padding}),
    "timm.layers.std_conv.ScaledStdConv2d": LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                                                      ("stride", "padding", "dilation", "groups", "eps"),
                                                      {"bias": _has_bias, "gamma": _gamma}),
    "timm.layers.std_conv.ScaledStdConv2dSame": LayerSpec("", ("in_channels", "out_channels", "kernel_size"),
                                                          ("stride", "dilation", "groups", "eps"),
                                                          {"bias": _has_bias, "gamma": _gamma,
                                                           "padding": _same_padding}),
    "torchvision.models.convnext.LayerNorm2d": LayerSpec("", ("normalized_shape",), ("eps", "elementwise_affine"),
                                                         {"bias": _has_bias}),
})


def layer_spec(module) -> LayerSpec | None:
    """The spec for ``module``'s exact class, or None when it is traced through."""
    cls = type(module)
    return _TORCH_LAYERS.get(f"{cls.__module__}.{cls.__qualname__}")


def layer_code(module, spec: LayerSpec) -> str | Unsupported:
    """``nn.Conv2d(3, 64, 7, stride=2, ...)`` for a torch module, or why fcnn cannot express it."""
    name = spec.fcnn_name or type(module).__name__
    cls = getattr(nn, name, None)
    if cls is None:
        return Unsupported(f"{type(module).__module__}.{type(module).__qualname__} (fcnn.nn has no {name})")
    if spec.check is not None:
        reason = spec.check(module)
        if reason:
            return Unsupported(f"{type(module).__qualname__}: {reason}")
    sig = inspect.signature(cls.__init__).parameters
    args = [_simplify(getattr(module, a)) for a in spec.positional]
    kwargs = {}
    for key in spec.keywords:
        kwargs[key] = _simplify(getattr(module, key))
    for key, fn in spec.derived.items():
        kwargs[key] = fn(module)
    for key in list(kwargs):
        if key not in sig:
            return Unsupported(f"{type(module).__qualname__}: fcnn.nn.{name} has no argument {key!r}")
        default = sig[key].default
        if default is not inspect.Parameter.empty and _same(kwargs[key], default):
            del kwargs[key]
    parts = [literal(a) for a in args] + [f"{k}={literal(v)}" for k, v in kwargs.items()]
    return f"nn.{name}({', '.join(parts)})"


def _simplify(value):
    """torch stores ``kernel_size=3`` as ``(3, 3)``; write it as fcnn's users would."""
    if isinstance(value, tuple) and value and all(type(v) is int and v == value[0] for v in value):
        return value[0]
    if isinstance(value, list):
        return tuple(value)
    return value


def _same(a, b) -> bool:
    if a is None or b is None:
        return a is b
    return type(a) is type(b) and a == b or (isinstance(a, (int, float)) and not isinstance(a, bool)
                                            and not isinstance(b, bool) and isinstance(b, (int, float)) and a == b)


# ----------------------------------------------------------------------------- glue


@dataclass
class GlueContext:
    """What a glue translation may use: names of traced values, the mode, static shapes."""

    names: Callable[[Any], str]
    train: bool
    shape: Callable[[Any], tuple | None]  # static shape of a traced tensor value (from the example input)

    def lit(self, value) -> str:
        return literal(value, self.names)


@dataclass(frozen=True)
class Alias:
    """The node is its input (``contiguous()``, eval-mode dropout): no statement, same variable."""

    value: Any


SKIP = object()  # the node computes nothing the model needs (``torch._assert``)


def bind_args(args, kwargs, names: tuple[str, ...], defaults: dict) -> dict:
    """A call's arguments by name: positional ones in ``names`` order, then keywords, over ``defaults``."""
    bound = dict(defaults)
    for name, value in zip(names, args):
        bound[name] = value
    bound.update(kwargs)
    return bound


_INFIX = {operator.add: "+", operator.sub: "-", operator.mul: "*", operator.truediv: "/", operator.floordiv: "//",
          operator.mod: "%", operator.pow: "**", operator.matmul: "@", operator.iadd: "+", operator.isub: "-",
          operator.imul: "*", operator.itruediv: "/", operator.eq: "==", operator.ne: "!=", operator.lt: "<",
          operator.le: "<=", operator.gt: ">", operator.ge: ">="}
_METHOD_INFIX = {"add": "+", "sub": "-", "mul": "*", "div": "/", "add_": "+", "sub_": "-", "mul_": "*", "div_": "/",
                 "__add__": "+", "__mul__": "*", "__sub__": "-", "__truediv__": "/", "matmul": "@"}
# torch functions and tensor methods that are fcnn.functional functions of the same name and arguments.
_F_SAME = {"relu", "relu6", "leaky_relu", "elu", "celu", "selu", "gelu", "silu", "mish", "hardswish", "hardsigmoid",
           "hardtanh", "sigmoid", "tanh", "softmax", "log_softmax", "softplus", "softsign", "logsigmoid", "glu",
           "threshold", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d",
           "adaptive_max_pool2d", "adaptive_max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d",
           "max_pool2d", "max_pool3d", "lp_pool1d", "lp_pool2d", "interpolate", "upsample", "pad", "pixel_shuffle",
           "pixel_unshuffle", "channel_shuffle", "local_response_norm", "linear", "conv1d", "conv2d", "conv3d",
           "layer_norm", "group_norm", "normalize", "unfold", "fold"}
_JNP_UNARY = {"exp": "jnp.exp", "log": "jnp.log", "sqrt": "jnp.sqrt", "rsqrt": "jax.lax.rsqrt", "abs": "jnp.abs",
              "neg": "jnp.negative", "square": "jnp.square", "erf": "jax.scipy.special.erf"}
_DROPOUTS = {"dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"}


def glue(kind: str, target, args: tuple, kwargs: dict, cx: GlueContext):
    """Translate one traced torch call into an fcnn expression.

    Args:
      kind: ``'call_function'`` or ``'call_method'`` (then ``args[0]`` is the tensor).
      target: the function, or the method name.
      args, kwargs: the call's arguments (traced values are FX nodes).
      cx: names, mode and static shapes.

    Returns:
      an expression string, :class:`Alias`, :data:`SKIP`, or :class:`Unsupported`.
    """
    lit = cx.lit
    if kind == "call_method":
        return _method(target, args, kwargs, cx)
    if target in _INFIX:
        return f"{lit(args[0])} {_INFIX[target]} {lit(args[1])}"
    if target is operator.neg:
        return f"-{lit(args[0])}"
    if target is operator.getitem:
        return f"{lit(args[0])}[{index_code(args[1], cx.names)}]"
    if target is getattr:
        if args[1] in ("shape", "ndim", "dtype", "T"):
            return f"{lit(args[0])}.{args[1]}"
        return Unsupported(f"tensor attribute .{args[1]}")
    name = getattr(target, "__name__", repr(target))
    mod = getattr(target, "__module__", None) or ""
    torch_like = mod.startswith("torch") or mod == "" or mod.startswith("torchvision") or mod.startswith("timm")
    if not torch_like:
        return Unsupported(f"function {mod}.{name}")
    if name == "_assert":
        return SKIP
    if mod.startswith("torchvision") and name == "stochastic_depth":
        b = bind_args(args, kwargs, ("input", "p", "mode", "training"), {"training": True})
        if not b["training"] or b["p"] == 0:
            return Alias(b["input"])
        if not hasattr(F, "stochastic_depth"):
            return Unsupported("torchvision.ops.stochastic_depth (fcnn.functional has no stochastic_depth)")
        return f"F.stochastic_depth({lit(b['input'])}, {lit(b['p'])}, {lit(b['mode'])}, training=True, key=ctx.next_rng())"
    if name in _DROPOUTS:
        b = bind_args(args, kwargs, ("input", "p", "training"), {"p": 0.5, "training": True})
        if not b["training"] or b["p"] == 0:
            return Alias(b["input"])
        return f"F.{name}({lit(b['input'])}, {lit(b['p'])}, training=True, key=ctx.next_rng())"
    return _function(name, args, kwargs, cx)


def _call(fn: str, args, kwargs, cx: GlueContext) -> str:
    """``F.name(args, kwargs)``, leaving out ``inplace`` and keywords equal to the fcnn function's defaults."""
    params = inspect.signature(getattr(F, fn.removeprefix("F."))).parameters
    kept = {k: v for k, v in kwargs.items() if k != "inplace" and not (
        k in params and params[k].default is not inspect.Parameter.empty and _same(v, params[k].default))}
    parts = [cx.lit(a) for a in args] + [f"{k}={cx.lit(v)}" for k, v in kept.items()]
    return f"{fn}({', '.join(parts)})"


def _dims(value):
    return tuple(value) if isinstance(value, (list, tuple)) else value


def _function(name: str, args, kwargs, cx: GlueContext):
    lit = cx.lit
    if name in ("add", "sub", "mul", "div", "true_divide", "multiply", "subtract") and "alpha" not in kwargs \
            and "rounding_mode" not in kwargs and len(args) == 2:
        op = {"add": "+", "sub": "-", "subtract": "-", "mul": "*", "multiply": "*", "div": "/", "true_divide": "/"}[name]
        return f"{lit(args[0])} {op} {lit(args[1])}"
    if name in ("cat", "concat", "concatenate"):
        b = bind_args(args, kwargs, ("tensors", "dim"), {"dim": 0})
        return f"jnp.concatenate({lit(list(b['tensors']))}, axis={lit(b['dim'])})"
    if name == "stack":
        b = bind_args(args, kwargs, ("tensors", "dim"), {"dim": 0})
        return f"jnp.stack({lit(list(b['tensors']))}, axis={lit(b['dim'])})"
    if name in ("flatten", "reshape", "permute", "transpose", "swapaxes", "chunk", "split", "squeeze", "unsqueeze",
                "mean", "sum", "amax", "amin", "clamp", "clip", "matmul", "maximum", "minimum", "where") \
            or name in _JNP_UNARY:
        return _method(name, args, kwargs, cx)
    if name in _F_SAME:
        if not hasattr(F, name):
            return Unsupported(f"torch.nn.functional.{name} (fcnn.functional has no {name})")
        return _call(f"F.{name}", args, kwargs, cx)
    return Unsupported(f"function torch.{name}" if not name.startswith("_") else f"function {name}")


def _method(name: str, args, kwargs, cx: GlueContext):
    lit = cx.lit
    x, rest = args[0], args[1:]
    xs = lit(x)
    if name in _METHOD_INFIX and len(rest) == 1 and not kwargs:
        return f"{xs} {_METHOD_INFIX[name]} {lit(rest[0])}"
    if name.endswith("_") and name[:-1] in _F_SAME | set(_JNP_UNARY):  # relu_, sigmoid_: in place, same value
        name = name[:-1]
    if name in ("contiguous", "clone", "cpu", "cuda", "requires_grad_"):
        return Alias(x)
    if name == "detach":
        return f"jax.lax.stop_gradient({xs})"
    if name in ("float", "double", "half", "bfloat16"):
        return f"{xs}.astype(jnp.{ {'float': 'float32', 'double': 'float64', 'half': 'float16'}.get(name, name)})"
    if name == "to" or name == "type":
        dtypes = [a for a in list(rest) + list(kwargs.values()) if _jnp_dtype(a) is not None]
        if not dtypes:
            return Alias(x)
        return f"{xs}.astype({lit(dtypes[0])})"
    if name == "type_as":
        return f"{xs}.astype({lit(rest[0])}.dtype)"
    if name == "size":
        b = bind_args(rest, kwargs, ("dim",), {"dim": None})
        return f"{xs}.shape" if b["dim"] is None else f"{xs}.shape[{lit(b['dim'])}]"
    if name == "dim":
        return f"{xs}.ndim"
    if name == "numel":
        return f"{xs}.size"
    if name in ("view", "reshape"):
        shape = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else tuple(rest)
        if "shape" in kwargs or "size" in kwargs:
            shape = kwargs.get("shape", kwargs.get("size"))
        return f"{xs}.reshape({lit(tuple(shape))})"
    if name == "view_as" or name == "reshape_as":
        return f"{xs}.reshape({lit(rest[0])}.shape)"
    if name == "flatten":
        b = bind_args(rest, kwargs, ("start_dim", "end_dim"), {"start_dim": 0, "end_dim": -1})
        return _flatten(xs, b["start_dim"], b["end_dim"])
    if name == "permute":
        dims = rest[0] if len(rest) == 1 and isinstance(rest[0], (list, tuple)) else tuple(rest)
        dims = kwargs.get("dims", dims)
        return f"jnp.transpose({xs}, {lit(tuple(dims))})"
    if name in ("transpose", "swapaxes"):
        b = bind_args(rest, kwargs, ("dim0", "dim1"), {})
        return f"jnp.swapaxes({xs}, {lit(b['dim0'])}, {lit(b['dim1'])})"
    if name == "unsqueeze":
        b = bind_args(rest, kwargs, ("dim",), {})
        return f"jnp.expand_dims({xs}, {lit(b['dim'])})"
    if name == "squeeze":
        b = bind_args(rest, kwargs, ("dim",), {"dim": None})
        shape = cx.shape(x)
        if b["dim"] is None:
            return f"jnp.squeeze({xs})"
        dims = b["dim"] if isinstance(b["dim"], (list, tuple)) else (b["dim"],)
        if shape is None or any(not isinstance(d, int) for d in dims):
            return Unsupported("squeeze(dim) of a tensor of unknown shape")
        # torch leaves dimensions whose size is not 1; jnp.squeeze would refuse them
        keep = tuple(d for d in dims if shape[d] == 1 and d % len(shape) != 0)
        if len(keep) != len([d for d in dims if shape[d] == 1]):
            return Unsupported("squeeze of the batch dimension")
        return f"jnp.squeeze({xs}, {lit(keep)})" if keep else Alias(x)
    if name in ("mean", "sum", "amax", "amin"):
        b = bind_args(rest, kwargs, ("dim", "keepdim"), {"dim": None, "keepdim": False})
        if "dtype" in kwargs:
            return Unsupported(f"{name}(dtype=...)")
        fn = {"amax": "max", "amin": "min"}.get(name, name)
        parts = []
        if b["dim"] is not None:
            parts.append(f"axis={lit(_dims(b['dim']))}")
        if b["keepdim"]:
            parts.append("keepdims=True")
        return f"{xs}.{fn}({', '.join(parts)})"
    if name in ("chunk", "split"):
        return _split(name, x, rest, kwargs, cx)
    if name in ("expand_as", "broadcast_to"):
        return f"jnp.broadcast_to({xs}, {lit(rest[0])}.shape)" if name == "expand_as" else \
            f"jnp.broadcast_to({xs}, {lit(tuple(rest[0]))})"
    if name in ("clamp", "clip"):
        b = bind_args(rest, kwargs, ("min", "max"), {"min": None, "max": None})
        return f"jnp.clip({xs}, {lit(b['min'])}, {lit(b['max'])})"
    if name in ("maximum", "minimum", "matmul"):
        return f"jnp.{name}({xs}, {lit(rest[0])})"
    if name == "pow":
        return f"{xs} ** {lit(rest[0])}"
    if name in _JNP_UNARY and not rest:
        return f"{_JNP_UNARY[name]}({xs})"
    if name in _F_SAME and hasattr(F, name):
        return _call(f"F.{name}", args, kwargs, cx)
    return Unsupported(f"tensor method .{name}()")


def _flatten(xs: str, start: int, end: int) -> str:
    """torch.flatten(x, start, end) for any rank: the dimensions before ``start`` and after ``end`` are kept."""
    head = f"*{xs}.shape[:{start}], " if start else ""
    tail = "" if end == -1 else f", *{xs}.shape[{end + 1}:]"
    if start == end:
        return Alias(Code(xs))
    return f"{xs}.reshape({head}-1{tail})"


def _split(name, x, rest, kwargs, cx: GlueContext):
    """torch.chunk / torch.split as jnp.split, at the section boundaries torch uses."""
    first = "chunks" if name == "chunk" else "split_size_or_sections"
    b = bind_args(rest, kwargs, (first, "dim"), {"dim": 0})
    b.setdefault(first, kwargs.get("split_size"))
    dim, how, shape = b["dim"], b[first], cx.shape(x)
    if shape is None or not isinstance(dim, int):
        return Unsupported(f"{name} of a value of unknown shape")
    if dim % len(shape) == 0:
        return Unsupported(f"{name} along the batch dimension")
    size = shape[dim]
    if name == "chunk":
        if size % how == 0:
            return f"jnp.split({cx.lit(x)}, {how}, axis={dim})"
        step = -(-size // how)
        cuts = list(range(step, size, step))
    elif isinstance(how, int):
        cuts = list(range(how, size, how))
        if size % how == 0:
            return f"jnp.split({cx.lit(x)}, {size // how}, axis={dim})"
    else:
        cuts = [sum(how[:i + 1]) for i in range(len(how) - 1)]
    return f"jnp.split({cx.lit(x)}, {cuts}, axis={dim})"
