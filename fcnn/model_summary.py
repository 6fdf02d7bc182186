"""``summary(model, input_shape)``: per-layer output shapes, parameters, FLOPs and receptive fields.

Nothing is computed on real data: the model is traced once with
``jax.eval_shape`` through :func:`fcnn.nn.apply_with_hook`, which reports
every layer's inputs and output under its state_dict name (``layer1.0.conv1``),
in the reference formulation (no backend fast path, :mod:`fcnn.backends`).

Conventions
-----------
* **params** counts the trainable entries of the layer's ``params`` subtree,
  **buffers** its ``state`` entries (BatchNorm running statistics, the
  ``num_batches_tracked`` counter).
* **FLOPs** are 2 × multiply-accumulates of convolutions, transposed
  convolutions and linear layers, for the whole batch (``batch_size=1`` by
  default) — the convention of most papers' "FLOPs" tables. Bias additions,
  normalisation, activations, pooling, upsampling and elementwise ops are
  counted as 0. A composite row shows the sum over its children. Grouped and
  depthwise convolutions count ``in_channels / groups`` inputs per output, and
  squeeze-and-excitation gates count their 1×1 convolutions: half the total is
  what torchvision publishes as its models' "GFLOPS" (``meta["_ops"]``).
* **Receptive field** of a layer's output, per spatial dimension, relative
  to the model's input, as three numbers ``size``, ``jump``, ``start``:
  output position ``i`` sees input positions
  ``[start + i·jump, start + i·jump + size − 1]`` (``start`` < 0 means the
  window reaches into the padding). It composes layer by layer: each
  spatial layer says which of its input positions ``lo(o)..hi(o)`` its
  output ``o`` reads (conv/pooling: ``o·stride − padding`` to
  ``o·stride − padding + dilation·(kernel − 1)``; ceil_mode only adds
  positions, it doesn't change this map), and the new window is the hull
  ``[min_o (start + lo(o)·jump − o·jump'), max_o (start + hi(o)·jump + size − 1 − o·jump')]``
  with ``jump' = jump × (input size / output size)``. For conv and pooling
  this is the textbook ``size' = size + dilation·(k − 1)·jump``,
  ``jump' = jump·stride``, ``start' = start − padding·jump``, exactly.
  Layers whose windows are not translation-uniform — adaptive pooling with
  sizes that don't divide, transposed convolutions (``jump' = jump / stride``),
  upsampling (``jump' = jump · in/out``, nearest reads 1 pixel, linear 2,
  cubic 4) and pixel shuffles — get the smallest window of that form that
  contains every output position's true receptive field; ``jump``/``size``/
  ``start`` may then be fractional.
* **Branches.** A tensor computed by plain jax code inside a ``forward``
  (a residual ``out + identity``, a U-Net ``concatenate``, a functional
  activation) is not seen by the hook. Its receptive field is taken as the
  union of the receptive fields of every tensor of the same spatial size
  produced so far — exact for residual additions and skip concatenations,
  whose inputs are among those tensors and whose largest field contains the
  others; an over-approximation only for a model that computes two
  same-sized branches and combines just one of them. Unions keep the
  larger jump.
* Layers fcnn doesn't know (user layers) whose output has the input's
  spatial size are taken as pointwise; other unknown layers, and outputs
  without spatial dimensions (after ``flatten``, ``Linear``), have no
  receptive field ("-"). Use :func:`register_receptive_field` to teach
  summary a layer type.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fcnn import _checks, backends
from fcnn.nn.module import Layer, Module, apply_with_hook

# rule(layer, in_size, out_size, axis) -> (ratio, deps) with deps(o) -> (lo, hi) or None
RFRule = Callable[[Layer, int, int, int], tuple[Fraction, Callable[[int], "tuple[int, int] | None"]]]
_RULES: dict[type, RFRule] = {}


def register_receptive_field(layer_type: type, rule: RFRule) -> None:
    """Teach :func:`summary` the spatial map of ``layer_type``.

    ``rule(layer, in_size, out_size, axis)`` returns ``(ratio, deps)``: the
    nominal input/output size ratio along ``axis`` (a ``Fraction``), and a
    function giving, for output index ``o``, the ``(lo, hi)`` range of input
    indices it reads (``None`` if it reads none).
    """
    _RULES[layer_type] = rule


@dataclass(frozen=True)
class Row:
    """One line of a :class:`Summary`."""

    name: str
    layer_type: str
    output_shape: tuple
    params: int
    buffers: int
    flops: int
    receptive_field: tuple | None
    jump: tuple | None
    start: tuple | None
    depth: int = 0


def _num(x: Fraction):
    return int(x) if x.denominator == 1 else float(x)


def _fmt_axes(values) -> str:
    if values is None:
        return "-"
    vals = [f"{v:g}" if isinstance(v, float) else str(v) for v in values]
    return vals[0] if len(set(vals)) == 1 else "×".join(vals)


def _fmt_int(n: int) -> str:
    return f"{n:,}"


class Summary:
    """What :func:`summary` returns: ``.rows``, totals, and text / Markdown / HTML tables."""

    COLUMNS = ("Layer", "Type", "Output shape", "Params", "Buffers", "FLOPs", "RF", "Jump", "Start")

    def __init__(self, model_name: str, input_shape: tuple, rows: list[Row], total_params: int,
                 total_buffers: int, output_shape):
        self.model_name = model_name
        self.input_shape = input_shape
        self.rows = rows
        self.total_params = total_params
        self.total_buffers = total_buffers
        self.total_flops = sum(r.flops for r in rows if r.depth == 0)
        self.output_shape = output_shape

    def _cells(self, indent: str) -> list[list[str]]:
        out = []
        for r in self.rows:
            out.append([indent * r.depth + r.name, r.layer_type, str(tuple(r.output_shape)),
                        _fmt_int(r.params), _fmt_int(r.buffers), _fmt_int(r.flops),
                        _fmt_axes(r.receptive_field), _fmt_axes(r.jump), _fmt_axes(r.start)])
        return out

    def _footer(self) -> list[str]:
        return [f"Input shape: {tuple(self.input_shape)}",
                f"Total params: {_fmt_int(self.total_params)}",
                f"Total buffers: {_fmt_int(self.total_buffers)}",
                f"Total FLOPs: {_fmt_int(self.total_flops)} (2 × multiply-adds of conv/linear layers)"]

    def __str__(self) -> str:
        cells = self._cells("  ")
        widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(self.COLUMNS)]
        right = {3, 4, 5, 6, 7, 8}

        def line(values):
            return "  ".join(v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

        rule = "-" * len(line(self.COLUMNS))
        body = [f"{self.model_name}", rule, line(self.COLUMNS), rule, *map(line, cells), rule, *self._footer()]
        return "\n".join(body)

    def __repr__(self) -> str:
        return str(self)

    def to_markdown(self) -> str:
        """A GitHub-flavoured Markdown table followed by the totals."""
        head = "| " + " | ".join(self.COLUMNS) + " |"
        align = "|" + "|".join(["---"] * 3 + ["---:"] * 6) + "|"
        rows = ["| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |" for cells in self._cells("&nbsp;&nbsp;")]
        return "\n".join([head, align, *rows, "", *(f"- {f}" for f in self._footer())])

    def _repr_html_(self) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in self.COLUMNS)
        trs = []
        for r, cells in zip(self.rows, self._cells("")):
            tds = [f'<td style="text-align:left;padding-left:{1 + r.depth}em">{html.escape(cells[0])}</td>']
            tds += [f"<td>{html.escape(c)}</td>" for c in cells[1:]]
            trs.append("<tr>" + "".join(tds) + "</tr>")
        foot = "<br>".join(html.escape(f) for f in self._footer())
        return (f"<div><b>{html.escape(self.model_name)}</b><table><thead><tr>{th}</tr></thead>"
                f"<tbody>{''.join(trs)}</tbody></table><p>{foot}</p></div>")


# --- receptive-field rules -------------------------------------------------------------------

def _window_rule(layer, in_size, out_size, axis):
    k = layer.kernel_size[axis]
    s = layer.stride[axis]
    d = getattr(layer, "dilation", (1,) * len(layer.kernel_size))[axis]
    pads = getattr(layer, "pads", None)
    lo_pad = pads[axis][0] if pads is not None else layer.padding[axis]
    return Fraction(s), lambda o: (o * s - lo_pad, o * s - lo_pad + d * (k - 1))


def _adaptive_rule(layer, in_size, out_size, axis):
    return Fraction(in_size, out_size), lambda o: ((o * in_size) // out_size, -((-(o + 1) * in_size) // out_size) - 1)


def _transpose_rule(layer, in_size, out_size, axis):
    k, s, p, d = layer.kernel_size[axis], layer.stride[axis], layer.padding[axis], layer.dilation[axis]

    def deps(o):
        # output o = i·stride − padding + tap·dilation
        ins = [(o + p - t * d) // s for t in range(k) if (o + p - t * d) % s == 0]
        return (min(ins), max(ins)) if ins else None

    return Fraction(1, s), deps


def _upsample_rule(layer, in_size, out_size, axis):
    mode = layer.mode
    sf = layer.scale_factor
    if isinstance(sf, tuple):
        sf = sf[axis]
    if mode == "area":
        return _adaptive_rule(layer, in_size, out_size, axis)
    scale = 1.0 / sf if sf and not layer.recompute_scale_factor else in_size / out_size
    last = in_size - 1
    if mode in ("nearest", "nearest-exact"):
        shift = 0.5 if mode == "nearest-exact" else 0.0

        def deps(o):
            i = min(int(math.floor((o + shift) * scale)), last)
            return i, i
    else:
        cubic = mode == "bicubic"
        if layer.align_corners:
            step = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
            src = lambda o: o * step  # noqa: E731
        else:
            src = lambda o: scale * (o + 0.5) - 0.5 if cubic else max(scale * (o + 0.5) - 0.5, 0.0)  # noqa: E731

        def deps(o):
            i0 = int(math.floor(src(o)))
            taps = range(i0 - 1, i0 + 3) if cubic else (i0, i0 + 1)
            taps = [min(max(t, 0), last) for t in taps]
            return min(taps), max(taps)

    return Fraction(in_size, out_size), deps


def _pixel_shuffle_rule(layer, in_size, out_size, axis):
    r = layer.upscale_factor
    return Fraction(1, r), lambda o: (o // r, o // r)


def _pixel_unshuffle_rule(layer, in_size, out_size, axis):
    r = layer.downscale_factor
    return Fraction(r), lambda o: (o * r, o * r + r - 1)


def _pad_rule(layer, in_size, out_size, axis):
    lo, hi = layer.pads(axis)
    if out_size - in_size != lo + hi:  # a trailing-dims pad on more spatial axes: this one isn't padded
        lo = 0

    def deps(o):
        i = o - lo
        if not 0 <= i < in_size:
            if layer.mode == "constant":
                return None
            # the input position a padded one copies
            i = {"replicate": min(max(i, 0), in_size - 1), "circular": i % in_size,
                 "reflect": -i if i < 0 else 2 * (in_size - 1) - i}[layer.mode]
        return i, i

    return Fraction(1), deps


def _same_rule(layer, in_size, out_size, axis):
    """TensorFlow-'SAME' layers: a window rule whose padding follows the input size."""
    from fcnn.nn.same_padding import same_padding

    if not getattr(layer, "same_pad", True):  # a standardised convolution with fixed padding
        return _window_rule(layer, in_size, out_size, axis)
    k, s = layer.kernel_size[axis], layer.stride[axis]
    d = getattr(layer, "dilation", (1,) * len(layer.kernel_size))[axis]
    lo = same_padding(in_size, k, s, d)[0]
    return Fraction(s), lambda o: (o * s - lo, o * s - lo + d * (k - 1))


def _register_builtin_rules() -> None:
    from fcnn.nn import conv

    register_receptive_field(conv.ConvNd, _window_rule)
    try:
        from fcnn.nn import pool

        register_receptive_field(pool._MaxPoolNd, _window_rule)
        register_receptive_field(pool._AvgPoolNd, _window_rule)
        register_receptive_field(pool._LPPoolNd, _window_rule)
        register_receptive_field(pool._AdaptivePoolNd, _adaptive_rule)
    except (ImportError, AttributeError):  # pragma: no cover - pooling not available
        pass
    try:
        from fcnn.nn import conv_transpose

        register_receptive_field(conv_transpose.ConvTransposeNd, _transpose_rule)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    from fcnn.nn import padding, same_padding, std_conv

    register_receptive_field(padding._PadNd, _pad_rule)
    for same in (same_padding.Conv2dSame, same_padding.MaxPool2dSame, same_padding.AvgPool2dSame, std_conv._StdConv):
        register_receptive_field(same, _same_rule)
    try:
        from fcnn.nn import upsample

        register_receptive_field(upsample.Upsample, _upsample_rule)
        register_receptive_field(upsample.PixelShuffle, _pixel_shuffle_rule)
        register_receptive_field(upsample.PixelUnshuffle, _pixel_unshuffle_rule)
    except (ImportError, AttributeError):  # pragma: no cover
        pass


def _rule_for(layer) -> RFRule | None:
    if not _RULES:
        _register_builtin_rules()
    for cls in type(layer).__mro__:
        if cls in _RULES:
            return _RULES[cls]
    return None


RF = tuple  # per spatial axis: (size, jump, start) as Fractions


def _compose(rf: RF, layer, rule: RFRule, in_spatial, out_spatial) -> RF | None:
    out = []
    for axis, ((size, jump, start), n_in, n_out) in enumerate(zip(rf, in_spatial, out_spatial)):
        ratio, deps = rule(layer, n_in, n_out, axis)
        new_jump = jump * ratio
        lo_edge = hi_edge = None
        for o in range(n_out):
            d = deps(o)
            if d is None:
                continue
            lo = start + d[0] * jump - o * new_jump
            hi = start + d[1] * jump + size - 1 - o * new_jump
            lo_edge = lo if lo_edge is None else min(lo_edge, lo)
            hi_edge = hi if hi_edge is None else max(hi_edge, hi)
        if lo_edge is None:
            return None
        out.append((hi_edge - lo_edge + 1, new_jump, lo_edge))
    return tuple(out)


def _union(rfs: list[RF]) -> RF:
    out = []
    for axes in zip(*rfs):
        jump = max(a[1] for a in axes)
        lo = min(a[2] for a in axes)
        hi = max(a[2] + a[0] - 1 for a in axes)
        out.append((hi - lo + 1, jump, lo))
    return tuple(out)


# --- FLOPs -----------------------------------------------------------------------------------

def _flops(layer, inputs, output) -> int:
    from fcnn.nn import conv

    if isinstance(layer, conv.ConvNd):
        return 2 * math.prod(output.shape) * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)
    try:
        from fcnn.nn.conv_transpose import ConvTransposeNd
    except ImportError:  # pragma: no cover
        ConvTransposeNd = ()
    if ConvTransposeNd and isinstance(layer, ConvTransposeNd):
        return 2 * math.prod(inputs[0].shape) * (layer.out_channels // layer.groups) * math.prod(layer.kernel_size)
    try:
        from fcnn.nn.linear import Linear
    except ImportError:  # pragma: no cover
        Linear = ()
    if Linear and isinstance(layer, Linear):
        return 2 * math.prod(output.shape) * layer.in_features
    return 0


# --- summary ---------------------------------------------------------------------------------

def _count(tree) -> int:
    return sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(tree))


def _subtree(tree, path: str):
    for part in path.split(".") if path else ():
        if not isinstance(tree, dict) or part not in tree:
            return {}
        tree = tree[part]
    return tree


def _spatial_rank(model) -> tuple[str, Layer] | None:
    """The first layer that fixes the number of spatial dims (a conv or pool), with its name."""
    layers = model.named_layers() if isinstance(model, Module) else [("", model)]
    for name, layer in layers:
        if isinstance(getattr(layer, "n", None), int) and getattr(layer, "n") > 0:
            return name, layer
    return None


def summary(model: Layer, input_shape: Sequence[int], dtype=jnp.float32, *, batch_size: int = 1,
            train: bool = False) -> Summary:
    """Describe ``model`` on inputs of shape ``(batch_size, *input_shape)`` without computing anything.

    Args:
      model: any fcnn layer or model.
      input_shape: one example's shape without the batch axis, e.g. ``(3, 224, 224)``.
      dtype: the input dtype.
      batch_size: batch used for output shapes and FLOPs.
      train: trace the training-mode forward (BatchNorm batch statistics, dropout).

    Returns:
      a :class:`Summary`; ``print`` it, or read ``.rows`` (name, layer_type,
      output_shape, params, buffers, flops, receptive_field, jump, start),
      ``.total_params``, ``.total_flops``. See the module docstring for the
      FLOPs and receptive-field conventions.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"summary: model must be an fcnn layer, got {type(model).__name__}")
    if isinstance(input_shape, (int, np.integer)) or not isinstance(input_shape, Sequence) or not input_shape or any(
            not _checks.is_int(d) or d <= 0 for d in input_shape):
        raise ValueError(f"summary: input_shape must be a non-empty tuple of positive ints (without the batch axis), "
                         f"got {input_shape!r}")
    input_shape = tuple(int(d) for d in input_shape)
    first = _spatial_rank(model)
    if first is not None and len(input_shape) != first[1].n + 1:
        name, layer = first
        want = ("C", "L") if first[1].n == 1 else ("C", "H", "W") if first[1].n == 2 else ("C", "D", "H", "W")
        raise ValueError(
            f"summary: input_shape {input_shape} has {len(input_shape)} dims, but {type(model).__name__}'s first "
            f"spatial layer {name or '(the model)'} ({type(layer).__name__}) expects {len(want)} dims "
            f"({', '.join(want)}), without the batch axis"
        )
    n_spatial = len(input_shape) - 1
    full_shape = (batch_size,) + input_shape

    params, state = jax.eval_shape(model.init, jax.random.key(0))
    records: list[dict] = []
    known: dict[int, tuple[Any, RF | None]] = {}

    def spatial(x):
        return tuple(x.shape[2:]) if getattr(x, "ndim", None) == n_spatial + 2 else None

    def rf_of(x):
        if id(x) in known and known[id(x)][0] is x:
            return known[id(x)][1]
        sp = spatial(x)
        if sp is None:
            return None
        same = [rf for t, rf in known.values() if rf is not None and spatial(t) == sp]
        return _union(same) if same else None

    def remember(x, rf):
        known[id(x)] = (x, rf)  # the tracer is kept alive, so its id can't be reused

    def hook(path, layer, inputs, output):
        outs = [o for o in jax.tree_util.tree_leaves(output) if hasattr(o, "shape")]
        out = outs[0] if outs else None
        main_in = next((i for i in inputs if hasattr(i, "shape")), None)
        in_rf = rf_of(main_in) if main_in is not None else None
        if isinstance(layer, Module):
            rf = rf_of(out) if out is not None else None
            flops = None
        else:
            rf = None
            rule = _rule_for(layer)
            if in_rf is not None and out is not None and spatial(out) is not None:
                if rule is not None:
                    rf = _compose(in_rf, layer, rule, spatial(main_in), spatial(out))
                elif spatial(out) == spatial(main_in):
                    rf = in_rf
            flops = _flops(layer, inputs, out) if out is not None else 0
        for o in outs:
            if not (id(o) in known and known[id(o)][0] is o):
                remember(o, rf if spatial(o) is not None else None)
        records.append(dict(path=path, layer=layer, out=out, rf=rf, flops=flops))

    def run(x):
        remember(x, tuple((Fraction(1), Fraction(1), Fraction(0)) for _ in range(n_spatial)))
        p, s = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, a.dtype), (params, state))
        out, _ = apply_with_hook(model, p, s, x, train=train, rng=jax.random.key(0) if train else None, hook=hook)
        return out

    # the reference formulation: a backend fast path may reorder layers (DenseNet's transitions pool first)
    with backends.use(backends.policy().replace(fast_paths=False)):
        output = jax.eval_shape(run, jax.ShapeDtypeStruct(full_shape, dtype))

    # hooks fire after a layer finishes (children before parents); show parents first
    order: list[dict] = []
    for rec in records:
        if rec["path"] == "":
            continue
        prefix = rec["path"] + "."
        first_child = next((i for i, r in enumerate(order) if r["path"].startswith(prefix)), None)
        if isinstance(rec["layer"], Module) and first_child is not None:
            # composites sum their children's FLOPs (children calls are the rows after first_child)
            rec["flops"] = sum(r["flops"] for r in order[first_child:] if r["path"].startswith(prefix)
                               and not isinstance(r["layer"], Module))
            order.insert(first_child, rec)
        else:
            if rec["flops"] is None:
                rec["flops"] = 0
            order.append(rec)

    rows = []
    for rec in order:
        rf = rec["rf"]
        out = rec["out"]
        rows.append(Row(
            name=rec["path"], layer_type=type(rec["layer"]).__name__,
            output_shape=tuple(out.shape) if out is not None else (),
            params=_count(_subtree(params, rec["path"])), buffers=_count(_subtree(state, rec["path"])),
            flops=int(rec["flops"]),
            receptive_field=None if rf is None else tuple(_num(a[0]) for a in rf),
            jump=None if rf is None else tuple(_num(a[1]) for a in rf),
            start=None if rf is None else tuple(_num(a[2]) for a in rf),
            depth=rec["path"].count("."),
        ))
    out_shape = jax.tree_util.tree_map(lambda a: tuple(a.shape), output)
    return Summary(type(model).__name__, input_shape, rows, _count(params), _count(state), out_shape)
