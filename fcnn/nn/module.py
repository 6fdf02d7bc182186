"""The layer protocol and the composite-layer mechanism.

A layer is a plain Python object that holds hyper-parameters and offers two
pure functions::

    params, state = layer.init(key)
    out, state = layer.apply(params, state, *inputs, train=False, rng=None)

``params`` (trainable) and ``state`` (buffers such as BatchNorm statistics)
are nested dicts of arrays. Joining their keys with ``"."`` gives the keys of
the equivalent torch module's ``state_dict()``. Nothing is stored on the layer
object after construction, so the same layer can be applied to many parameter
sets (``jax.vmap`` over stacked params gives an ensemble).

Composite layers subclass :class:`Module`, assign children as attributes in
``__init__`` (as in torch) and write ``forward(self, ctx, *inputs)``, calling
children through the explicit context ``ctx``::

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv = nn.Conv2d(c, c, 3, padding=1)
            self.bn = nn.BatchNorm2d(c)

        def forward(self, ctx, x):
            return x + ctx.bn(ctx.conv(x))

``ctx.conv(x)`` applies the child named ``conv`` with ``params['conv']`` and
``state['conv']``, records its new state under the same name and hands it its
own PRNG key. ``ctx.train`` tells the forward code whether it is training and
``ctx.next_rng()`` gives a fresh key for randomness of its own. The context is
created by ``apply`` and passed as an argument: there is no global state.

Every ``apply`` checks its arguments before anything is traced: ``train`` must
be a Python bool, ``rng`` ``None`` or a PRNG key, and ``params``/``state`` must
have exactly the keys, shapes and dtype kinds of the layer's own
:meth:`Layer.param_spec` — by default ``jax.eval_shape(layer.init, key)``,
computed once per layer. A mismatch raises a ``ValueError`` that lists each
missing, unexpected or misshapen entry by its dotted state_dict name (and, in
a composite, the child layer it belongs to), instead of running with another
layer's parameters. Dtypes are compared by kind (floating, integer, bool,
complex, PRNG key) rather than exactly, so params cast to ``bfloat16`` for a
mixed-precision step pass while an integer array in place of a float weight
does not. Entries that hold no arrays (``None``, ``{}``) count as absent.

The check is given to every subclass of :class:`Layer` without any code of
its own: ``Layer.__init_subclass__`` wraps each ``apply`` a subclass defines
so that the outermost call checks (a ``super().apply(...)`` inside does not
check again), and the children a :class:`Module` runs through its context are
covered by the composite's own check of its whole tree. Under ``jax.jit`` the
checks run once per trace and leave the compiled program unchanged.

A layer whose parameters ``init`` cannot describe (a shape that depends on
data, an optional entry) overrides :meth:`Layer.param_spec` to return the
accepted ``(params, state)`` as trees of ``jax.ShapeDtypeStruct``, or ``None``
to accept any dicts (it then checks its params itself).
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np

from fcnn._checks import is_typed_key

Params = dict
State = dict

# hook(path, layer, inputs, output) is called after every layer application
# when a model is run through :func:`apply_with_hook` (used by fcnn.summary).
Hook = Callable[[str, "Layer", tuple, Any], None]


class Layer:
    """Base class of every fcnn layer: ``init(key)`` and ``apply(...)``.

    Subclasses without parameters or buffers only override :meth:`apply`.
    Every ``apply`` a subclass defines is wrapped so that its arguments are
    checked against :meth:`param_spec` first (see the module docstring).
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "apply" in cls.__dict__:
            cls.apply = _checked_apply(cls.__dict__["apply"])

    def param_spec(self):
        """The ``(params, state)`` that :meth:`apply` accepts, as trees of ``jax.ShapeDtypeStruct``.

        Defaults to ``jax.eval_shape(self.init, key)``; override it for
        parameters whose shapes ``init`` cannot state, or return ``None`` to
        skip the check. Called once per layer (per set of children for a
        :class:`Module`), not per ``apply``.
        """
        return jax.eval_shape(self.init, jax.random.key(0))

    def init(self, key: jax.Array) -> tuple[Params, State]:
        """Create ``(params, state)``; both nested dicts of arrays, ``{}`` when empty."""
        del key
        return {}, {}

    def apply(self, params: Params, state: State, *inputs, train: bool = False, rng=None):
        """Run the layer; returns ``(output, new_state)``. Pure: nothing is mutated."""
        raise NotImplementedError(f"{type(self).__name__}.apply is not implemented")

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_train(train: Any, where: str) -> bool:
    if not isinstance(train, bool):
        if isinstance(train, jax.core.Tracer):
            raise TypeError(
                f"{where}: train must be a Python bool, got a traced value; it selects the computation and "
                "must be static: jax.jit(layer.apply, static_argnames='train')"
            )
        raise TypeError(f"{where}: train must be a Python bool (True or False), got {train!r}")
    return train


def check_rng(rng: Any, where: str, name: str = "rng"):
    """``None``, a typed key (``jax.random.key``) or raw uint32 key data (``jax.random.PRNGKey``); else TypeError."""
    if rng is None or is_typed_key(rng):
        return rng
    dtype = getattr(rng, "dtype", None)
    if dtype is not None and np.dtype(dtype) == np.uint32 and np.ndim(rng) >= 1:
        return rng
    got = f"an array of dtype {dtype} and shape {tuple(np.shape(rng))}" if dtype is not None else repr(rng)
    raise TypeError(f"{where}: {name} must be None or a PRNG key (e.g. jax.random.key(0)), got {got}")


@functools.lru_cache(maxsize=None)
def _dtype_kind(dtype) -> str:
    if jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return "PRNG key"
    for kind in (jnp.bool_, jnp.integer, jnp.floating, jnp.complexfloating):
        if jnp.issubdtype(dtype, kind):
            return {jnp.bool_: "bool", jnp.integer: "integer", jnp.floating: "floating",
                    jnp.complexfloating: "complex"}[kind]
    return str(dtype)


def _flat_spec(tree, prefix: tuple = ()) -> dict:
    """``{path: (shape, kind)}`` of a spec tree, entries without arrays dropped."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat_spec(value, prefix + (key,)))
        elif value is not None:
            out[prefix + (key,)] = (tuple(value.shape), _dtype_kind(value.dtype))
    return out


def _spec_token(layer: Layer) -> tuple:
    # A Module's spec follows its children, which may be added after it was first applied.
    if isinstance(layer, Module):
        return tuple((path, id(child)) for path, child in layer.named_layers())
    return ()


def _layer_spec(layer: Layer):
    """The layer's flat ``(params, state)`` specs (``None``: unchecked), cached on the layer object."""
    token = _spec_token(layer)
    cached = layer.__dict__.get("_fcnn_param_spec")
    if cached is not None and cached[0] == token:
        return cached[1]
    spec = layer.param_spec()
    flat = None if spec is None else (_flat_spec(spec[0]), _flat_spec(spec[1]))
    object.__setattr__(layer, "_fcnn_param_spec", (token, flat))
    return flat


def _leaf_shape_kind(leaf):
    if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
        return None
    return tuple(leaf.shape), _dtype_kind(leaf.dtype)


def _tree_problems(tree: Mapping, spec: dict, name: str) -> list:
    """``(path, message)`` for every entry where ``tree`` differs from the flat ``spec``."""
    problems = []
    given = {}

    def walk(node, prefix):
        for key, value in node.items():
            path = prefix + (key,)
            if value is None or (isinstance(value, Mapping) and not value):
                continue
            if isinstance(value, Mapping) and path not in spec:
                walk(value, path)
            else:
                given[path] = value

    walk(tree, ())
    for path, value in given.items():
        where = f"{name} entry {_dotted(path)!r}"
        if path not in spec:
            inner = any(p[:len(path)] == path for p in spec)
            problems.append((path, f"{where} is an array, expected a dict" if inner else f"unexpected {where}"))
            continue
        shape, kind = spec[path]
        got = _leaf_shape_kind(value)
        if got is None:
            problems.append((path, f"{where} is a {type(value).__name__}, expected an array"))
        elif got[0] != shape:
            problems.append((path, f"{where} has shape {got[0]}, expected {shape}"))
        elif got[1] != kind:
            problems.append((path, f"{where} has dtype {value.dtype}, expected a {kind} dtype"))
    for path, (shape, kind) in spec.items():
        # An entry under a misplaced array (reported above) is not reported again.
        if path not in given and not any(path[:i] in given for i in range(1, len(path))):
            problems.append((path, f"missing {name} entry {_dotted(path)!r} ({kind}, shape {shape})"))
    return problems


def _dotted(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _owner(layer: Layer, path: tuple) -> str:
    """`` (in Conv2d '1')`` for a composite's entry, naming the child layer that owns it."""
    if not isinstance(layer, Module):
        return ""
    names = dict(layer.named_layers())
    for i in range(len(path) - 1, 0, -1):
        child = names.get(_dotted(path[:i]))
        if child is not None:
            return f" (in {type(child).__name__} {_dotted(path[:i])!r})"
    return ""


def check_apply_args(layer: Layer, params, state, train, rng) -> None:
    """What every ``apply`` checks before it runs: ``train``, ``rng``, and ``params``/``state`` against the spec."""
    where = type(layer).__name__
    check_train(train, where)
    check_rng(rng, where)
    spec = _layer_spec(layer)
    if spec is None:
        return
    problems = []
    for name, tree, flat in (("params", params, spec[0]), ("state", state, spec[1])):
        if tree is None:
            tree = {}
        elif not isinstance(tree, Mapping):
            raise TypeError(f"{where}: {name} must be a dict (from layer.init(key)), got {type(tree).__name__}")
        problems += [message + _owner(layer, path) for path, message in _tree_problems(tree, flat, name)]
    if problems:
        hint = ""
        if not params and spec[0] or not state and spec[1]:
            hint = " (params and state come from layer.init(key); was apply called before init?)"
        raise ValueError(f"{where}: params/state do not match this layer{hint}:\n  " + "\n  ".join(problems))


def _checked_apply(apply):
    """``apply`` preceded by :func:`check_apply_args` when it is the outermost ``apply`` of the call."""

    @functools.wraps(apply)
    def checked(self, params, state, *inputs, **kwargs):
        if type(self).apply is checked:
            check_apply_args(self, params, state, kwargs.get("train", False), kwargs.get("rng"))
        return apply(self, params, state, *inputs, **kwargs)

    return checked


def _unchecked_apply(layer: Layer):
    apply = type(layer).apply
    return getattr(apply, "__wrapped__", apply)


def check_bool(value: Any, name: str, where: str) -> bool:
    """A layer's bool hyper-parameter ``name``: a Python bool, else TypeError."""
    if not isinstance(value, bool):
        raise TypeError(f"{where}: {name} must be a bool, got {value!r}")
    return value


def require_rng(rng, where: str):
    if rng is None:
        raise ValueError(
            f"{where}: rng is required when train=True (pass rng=jax.random.key(...) to apply)"
        )
    return rng


class Module(Layer):
    """A layer made of named child layers and a ``forward`` written by the user.

    Children are registered by assigning :class:`Layer` instances as
    attributes in ``__init__`` (after ``super().__init__()``); the attribute
    name is the child's key in ``params``/``state``, as in torch's state_dict.
    Children without parameters (or without buffers) leave no entry.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_children", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        if isinstance(value, Layer):
            if children is None:
                raise AttributeError(
                    f"{type(self).__name__}: cannot assign child layer {name!r} before Module.__init__() call"
                )
            children[name] = value
        elif children is not None and name in children:
            if value is not None:
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} as child layer {name!r} "
                    "(a Layer or None is expected)"
                )
            del children[name]
        object.__setattr__(self, name, value)

    def add_module(self, name: str, layer: Layer) -> None:
        """Register ``layer`` under ``name`` (names that are not identifiers, e.g. ``"0"``)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} is not a Layer: {layer!r}")
        if "." in name or name == "":
            raise ValueError(f"{type(self).__name__}.add_module: child name can't be empty or contain '.', got {name!r}")
        self._children[name] = layer
        object.__setattr__(self, name, layer)

    def children(self) -> "OrderedDict[str, Layer]":
        """The direct children, in registration order."""
        return OrderedDict(self._children)

    def named_layers(self, prefix: str = "") -> Iterator[tuple[str, Layer]]:
        """All layers below (and including) this one, with dotted state_dict-style names."""
        yield prefix, self
        for name, child in self._children.items():
            path = f"{prefix}.{name}" if prefix else name
            if isinstance(child, Module):
                yield from child.named_layers(path)
            else:
                yield path, child

    def init(self, key: jax.Array) -> tuple[Params, State]:
        params: Params = {}
        state: State = {}
        for i, (name, child) in enumerate(self._children.items()):
            p, s = child.init(jax.random.fold_in(key, i))
            if p:
                params[name] = p
            if s:
                state[name] = s
        return params, state

    def apply(self, params: Params, state: State, *inputs, train: bool = False, rng=None, **kwargs):
        return _apply(self, params, state, *inputs, train=train, rng=rng, **kwargs)

    def forward(self, ctx: "Context", *inputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward(self, ctx, *inputs)")

    def __repr__(self) -> str:
        if not self._children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Context:
    """What ``Module.forward`` uses to call its children; created by ``apply``.

    ``ctx.<name>(*inputs, **kwargs)`` or ``ctx(name, *inputs, **kwargs)``
    applies the child ``name``. ``ctx.train`` is the training flag.
    """

    def __init__(self, module: Module, params, state, train: bool, rng, hook, path: str):
        self._module = module
        self._params = params
        self._state = dict(state)
        self._rng = rng
        self._hook = hook
        self._path = path
        self._calls = 0
        self.train = train

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._module._children:
            raise AttributeError(
                f"{type(self._module).__name__} has no child layer {name!r} "
                f"(children: {list(self._module._children)})"
            )
        return lambda *inputs, **kwargs: self(name, *inputs, **kwargs)

    def __call__(self, name: str, *inputs, **kwargs):
        try:
            child = self._module._children[name]
        except KeyError:
            raise AttributeError(
                f"{type(self._module).__name__} has no child layer {name!r} "
                f"(children: {list(self._module._children)})"
            ) from None
        out, new_state = _apply(
            child,
            self._params.get(name, {}),
            self._state.get(name, {}),
            *inputs,
            train=self.train,
            rng=self.next_rng() if self._rng is not None else None,
            hook=self._hook,
            path=f"{self._path}.{name}" if self._path else name,
            **kwargs,
        )
        if new_state:
            self._state[name] = new_state
        return out

    def next_rng(self):
        """A fresh PRNG key for this call (``None`` when apply got ``rng=None``)."""
        if self._rng is None:
            return None
        self._calls += 1
        return jax.random.fold_in(self._rng, self._calls)


def apply_with_hook(layer: Layer, params, state, *inputs, train: bool = False, rng=None,
                    hook: Hook | None = None, path: str = "", **kwargs):
    """Apply ``layer``, calling ``hook(path, layer, inputs, output)`` after every layer inside it.

    With ``hook=None`` this is ``layer.apply``. Tools such as ``fcnn.summary``
    use it to see every intermediate output under its state_dict name.
    """
    check_apply_args(layer, params, state, train, rng)
    return _apply(layer, params, state, *inputs, train=train, rng=rng, hook=hook, path=path, **kwargs)


def _apply(layer: Layer, params, state, *inputs, train: bool = False, rng=None,
           hook: Hook | None = None, path: str = "", **kwargs):
    """:func:`apply_with_hook` without the argument check: the caller (the whole model's apply) did it."""
    if isinstance(layer, Module):
        ctx = Context(layer, params, state, train, rng, hook, path)
        out = layer.forward(ctx, *inputs, **kwargs)
        new_state = ctx._state
    else:
        out, new_state = _unchecked_apply(layer)(layer, params, state, *inputs, train=train, rng=rng, **kwargs)
    if hook is not None:
        hook(path, layer, inputs, out)
    return out, new_state


class Sequential(Module):
    """Apply children in order, like ``torch.nn.Sequential``.

    ``Sequential(a, b, c)`` names the children ``"0"``, ``"1"``, ``"2"``;
    ``Sequential(OrderedDict(conv=..., relu=...))`` uses the given names.
    Indexing (``seq[0]``, ``seq[1:]``) and ``len`` work as in torch.
    """

    def __init__(self, *layers) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (OrderedDict, dict)):
            for name, layer in layers[0].items():
                self.add_module(str(name), layer)
        else:
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self):
        return iter(self._children.values())

    def __getitem__(self, idx):
        items = list(self._children.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[idx][1]

    def forward(self, ctx: Context, x):
        for name in self._children:
            x = ctx(name, x)
        return x


class ModuleList(Module):
    """Hold children named ``"0"``, ``"1"``, …; ``forward`` is the user's (call ``ctx("0", x)``)."""

    def __init__(self, layers=()) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self):
        return iter(self._children.values())

    def __getitem__(self, idx: int) -> Layer:
        return list(self._children.values())[idx]
