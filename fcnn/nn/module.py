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
            self.layer_scale = nn.Parameter((c, 1, 1), nn.init.constant(1e-6))

        def forward(self, ctx, x):
            return x + ctx.layer_scale * ctx.bn(ctx.conv(x))

``ctx.conv(x)`` applies the child named ``conv`` with ``params['conv']`` and
``state['conv']``, records its new state under the same name and hands it its
own PRNG key. ``ctx.layer_scale`` is the block's own parameter
``params['layer_scale']`` (torch's ``self.layer_scale``, an ``nn.Parameter``
on the module). Children of container children are reached as in torch:
``ctx.blocks[0](x)``, ``ctx.heads['cls'](x)``, ``for blk in ctx.blocks``,
``ctx.layer1[0].conv1(x)``, or by dotted name, ``ctx('layer1.0.conv1', x)``.
``ctx.train`` tells the forward code whether it is training and
``ctx.next_rng()`` gives a fresh key for randomness of its own. The context is
created by ``apply`` and passed as an argument: there is no global state.

Every ``apply`` checks its arguments before anything is traced: ``train`` must
be a Python bool, ``rng`` ``None`` or a PRNG key, and ``params``/``state`` must
have exactly the keys, shapes and dtype kinds of the layer's own
:meth:`Layer.param_spec` — by default ``jax.eval_shape(layer.init, key)``,
computed once per layer, or read off what the layer's ``init`` returned when
it has run (the abstract trace of ``init`` costs 0.1–0.2 s for the
torchvision-sized networks). A mismatch raises a ``ValueError`` that lists each
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

from fcnn import _checks

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
        if "init" in cls.__dict__:
            cls.init = _spec_recording_init(cls.__dict__["init"])

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

    def __call__(self, *args, **kwargs):
        # A layer holds no weights, so calling it as torch's modules are called can't work; say what to write.
        raise TypeError(
            f"a {type(self).__name__} layer is not called directly: inside a Module's forward apply a child "
            f"through the context, ctx.<name>(x) (e.g. ctx.conv(x) rather than self.conv(x)); elsewhere use "
            f"layer.apply(params, state, x, train=..., rng=...)"
        )

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def check_train(train: Any, where: str) -> bool:
    if isinstance(train, bool):  # np.bool_ too is refused: train is a Python bool everywhere
        return train
    if isinstance(train, jax.core.Tracer):
        _checks.static_bool(train, "train", where, how="jax.jit(layer.apply, static_argnames='train')")
    raise TypeError(f"{where}: train must be a Python bool (True or False), got {train!r}")


def check_rng(rng: Any, where: str):
    """``None`` or a PRNG key; else TypeError."""
    return _checks.prng_key(rng, "rng", where)


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
    # A Module's spec follows its children and own tensors, which may be added after it was first applied.
    if isinstance(layer, Module):
        return tuple((path, id(child), tuple((n, id(t)) for n, t in getattr(child, "_tensors", {}).items()))
                     for path, child in layer.named_layers())
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


def _spec_recording_init(init):
    """``init`` that also caches the layer's flat spec from its result, as :func:`_layer_spec` would compute it.

    Only the outermost ``init`` of the layer's class records (a ``super().init``
    inside does not), and only where the class keeps the default
    :meth:`Layer.param_spec`, which is the shapes of what ``init`` returns.
    """

    @functools.wraps(init)
    def recording(self, key):
        out = init(self, key)
        if type(self).init is recording and type(self).param_spec is Layer.param_spec:
            try:
                params, state = out
                flat = (_flat_spec(params), _flat_spec(state))
            except (TypeError, ValueError, AttributeError):
                return out  # not dicts of arrays: apply's check reports it, param_spec computes the spec then
            object.__setattr__(self, "_fcnn_param_spec", (_spec_token(self), flat))
        return out

    return recording


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


class RngRequiredError(ValueError):
    """A layer that is random while training was applied with ``train=True`` and ``rng=None``.

    ``path`` is the layer's state_dict-style name in the model ("" at top level);
    :func:`apply_with_hook` fills it in, so the message says which layer of a model needs the key.
    """

    def __init__(self, where: str, path: str = ""):
        self.where, self.path = where, path
        at = f"{path} ({where})" if path else where
        super().__init__(f"{at}: rng is required when train=True (pass rng=jax.random.key(...) to apply)")


def require_rng(rng, where: str):
    if rng is None:
        raise RngRequiredError(where)
    return rng


class _Tensor:
    """A tensor a :class:`Module` declares itself; see :class:`Parameter` and :class:`Buffer`."""

    def __init__(self, shape, init: Callable, *, dtype=None):
        where = type(self).__name__
        if isinstance(shape, int) and not isinstance(shape, bool):
            shape = (shape,)
        if not isinstance(shape, (tuple, list)) or any(
                not _checks.is_int(d) or d < 0 for d in shape):
            raise TypeError(f"{where}: shape must be a tuple of non-negative ints, got {shape!r}")
        if not callable(init):
            raise TypeError(f"{where}: init must be a function (key, shape, dtype) -> array "
                            f"(e.g. nn.init.constant(1e-6)), got {init!r}")
        self.shape = tuple(shape)
        self.init = init
        self.dtype = jnp.float32 if dtype is None else dtype

    def create(self, key: jax.Array, where: str):
        value = jnp.asarray(self.init(key, self.shape, self.dtype))
        if value.shape != self.shape:
            raise ValueError(f"{where}: init returned shape {value.shape}, declared {self.shape}")
        return value.astype(self.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={jnp.dtype(self.dtype).name})"


class Parameter(_Tensor):
    """A trainable tensor owned by a :class:`Module` itself, as torch's ``nn.Parameter`` assigned to a module.

    Assign it in ``__init__`` (``self.layer_scale = nn.Parameter((dim, 1, 1), nn.init.constant(1e-6))``);
    ``init`` puts it in ``params`` under the attribute name, before the children's entries (torch's
    state_dict order), and ``forward`` reads it as ``ctx.layer_scale``.

    Args:
      shape: the tensor's shape.
      init: ``(key, shape, dtype) -> array``, e.g. from :mod:`fcnn.nn.init` (torch's
        ``nn.Parameter(torch.ones(dim, 1, 1) * s)`` is ``nn.init.constant(s)``).
      dtype: default float32.
    """


class Buffer(_Tensor):
    """A non-trainable tensor owned by a :class:`Module`, as torch's ``nn.Buffer`` / ``register_buffer``.

    It lives in ``state`` under the attribute name (torch's persistent buffers are in its state_dict);
    ``forward`` reads it as ``ctx.<name>`` and replaces it with ``ctx.set_buffer(name, value)``, which
    ``apply`` returns in the new state. Same arguments as :class:`Parameter`.
    """


# Own tensors draw their initial values from a stream apart from the children's
# (fold_in(key, i) for child i), so declaring one leaves the children's values unchanged.
_OWN_TENSOR_STREAM = 2**31


def _check_name(name: Any, where: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"{where}: a name must be a str, got {name!r}")
    if "." in name or name == "":
        raise ValueError(f"{where}: a name can't be empty or contain '.', got {name!r}")
    return name


class Module(Layer):
    """A layer made of named child layers, its own tensors and a ``forward`` written by the user.

    Children are registered by assigning :class:`Layer` instances as
    attributes in ``__init__`` (after ``super().__init__()``); the attribute
    name is the child's key in ``params``/``state``, as in torch's state_dict.
    Children without parameters (or without buffers) leave no entry.
    Assigning a :class:`Parameter` or :class:`Buffer` declares a tensor of the
    module itself (torch's ``nn.Parameter`` / ``nn.Buffer`` attributes).
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_children", OrderedDict())
        object.__setattr__(self, "_tensors", OrderedDict())

    def __setattr__(self, name: str, value: Any) -> None:
        children = self.__dict__.get("_children")
        tensors = self.__dict__.get("_tensors")
        if isinstance(value, (Layer, _Tensor)):
            if children is None:
                what = "child layer" if isinstance(value, Layer) else type(value).__name__
                raise AttributeError(
                    f"{type(self).__name__}: cannot assign {what} {name!r} before Module.__init__() call"
                )
            children.pop(name, None)
            tensors.pop(name, None)
            (children if isinstance(value, Layer) else tensors)[name] = value
        elif children is not None and (name in children or name in tensors):
            if value is not None:
                kind = "child layer" if name in children else type(tensors[name]).__name__
                raise TypeError(
                    f"{type(self).__name__}: cannot assign {type(value).__name__} to {kind} {name!r} "
                    f"(a Layer, a Parameter, a Buffer or None is expected)"
                )
            children.pop(name, None)
            tensors.pop(name, None)
        object.__setattr__(self, name, value)

    def add_module(self, name: str, layer: Layer) -> None:
        """Register ``layer`` under ``name`` (names that are not identifiers, e.g. ``"0"``)."""
        if not isinstance(layer, Layer):
            raise TypeError(f"{type(self).__name__}.add_module: {name!r} is not a Layer: {layer!r}")
        _check_name(name, f"{type(self).__name__}.add_module")
        self._tensors.pop(name, None)
        self._children[name] = layer
        object.__setattr__(self, name, layer)

    def register_parameter(self, name: str, param: Parameter) -> None:
        """Declare the module's own :class:`Parameter` ``name`` (torch's ``register_parameter``)."""
        self._register_tensor(name, param, Parameter, "register_parameter")

    def register_buffer(self, name: str, buffer: Buffer) -> None:
        """Declare the module's own :class:`Buffer` ``name`` (torch's ``register_buffer``, persistent)."""
        self._register_tensor(name, buffer, Buffer, "register_buffer")

    def _register_tensor(self, name, value, kind, method):
        where = f"{type(self).__name__}.{method}"
        if not isinstance(value, kind):
            raise TypeError(f"{where}: {name!r} must be an nn.{kind.__name__}, got {value!r}")
        _check_name(name, where)
        self._children.pop(name, None)
        self._tensors[name] = value
        object.__setattr__(self, name, value)

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
        # torch's state_dict order: the module's own parameters and buffers, then the children's
        params: Params = {}
        state: State = {}
        own_key = jax.random.fold_in(key, _OWN_TENSOR_STREAM)
        for i, (name, tensor) in enumerate(self._tensors.items()):
            value = tensor.create(jax.random.fold_in(own_key, i), f"{type(self).__name__}.{name}")
            (params if isinstance(tensor, Parameter) else state)[name] = value
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
        lines = [f"{type(self).__name__}("] + [f"  {line}" for line in self.extra_repr().split("\n") if line]
        for name, child in self._children.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


class Context:
    """What ``Module.forward`` uses to call its children and read its own tensors; created by ``apply``.

    ``ctx.<name>(*inputs, **kwargs)`` or ``ctx(name, *inputs, **kwargs)``
    applies the child ``name`` (``name`` may be dotted, ``'layer1.0.conv1'``).
    ``ctx.<name>`` of a :class:`Parameter` or :class:`Buffer` is its array.
    ``ctx.train`` is the training flag.
    """

    def __init__(self, module: Module, params, state, train: bool, rng, hook, path: str, parent=None):
        self._module = module
        self._params = params
        self._state = dict(state)
        self._rng = rng
        self._hook = hook
        self._path = path
        self._calls = 0
        self._subs: dict[str, Context] = {}
        # (parent context, name) when this context reaches into a container child without applying it
        self._parent = parent
        self.train = train

    def _missing(self, name: str) -> AttributeError:
        m = self._module
        owned = f"children: {list(m._children)}" + (f", tensors: {list(m._tensors)}" if m._tensors else "")
        return AttributeError(f"{type(m).__name__} has no child layer or tensor {name!r} ({owned})")

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        tensor = self._module._tensors.get(name)
        if tensor is not None:
            return self._params[name] if isinstance(tensor, Parameter) else self._state[name]
        if name not in self._module._children:
            raise self._missing(name)
        return Child(self, name)

    def __call__(self, name: str, *inputs, **kwargs):
        if "." in name:
            first, rest = name.split(".", 1)
            return self._sub(first)(rest, *inputs, **kwargs)
        try:
            child = self._module._children[name]
        except KeyError:
            raise self._missing(name) from None
        out, new_state = _apply(
            child,
            self._params.get(name, {}),
            self._state.get(name, {}),
            *inputs,
            train=self.train,
            rng=self.next_rng() if self._rng is not None else None,
            hook=self._hook,
            path=self._child_path(name),
            **kwargs,
        )
        self._record(name, new_state)
        # a context reaching into this child (ctx.blocks[0]) must not keep the state it had before this call
        self._subs.pop(name, None)
        return out

    def _child_path(self, name: str) -> str:
        return f"{self._path}.{name}" if self._path else name

    def _record(self, name: str, new_state) -> None:
        if new_state:
            self._state[name] = new_state
        if self._parent is not None:
            parent, my_name = self._parent
            parent._record(my_name, dict(self._state))

    def _sub(self, name: str) -> "Context":
        """The context of the container child ``name``, for calling its children (``ctx.blocks[0](x)``)."""
        if name not in self._subs:
            child = self._module._children.get(name)
            if not isinstance(child, Module):
                if child is None:
                    raise self._missing(name)
                raise TypeError(f"{self._child_path(name)} ({type(child).__name__}) has no children to reach into")
            self._subs[name] = Context(child, self._params.get(name, {}), self._state.get(name, {}), self.train,
                                       self.next_rng(), self._hook, self._child_path(name), parent=(self, name))
        return self._subs[name]

    def set_buffer(self, name: str, value) -> None:
        """Replace the module's own :class:`Buffer` ``name``; ``apply`` returns it in the new state.

        The new value must keep the declared shape and dtype, so that the state's structure stays fixed.
        """
        tensor = self._module._tensors.get(name)
        where = type(self._module).__name__
        if not isinstance(tensor, Buffer):
            raise AttributeError(f"{where}.set_buffer: {name!r} is not a Buffer of the module "
                                 f"(buffers: {[k for k, t in self._module._tensors.items() if isinstance(t, Buffer)]})")
        shape, dtype = jnp.shape(value), jnp.result_type(value)
        if shape != tensor.shape or dtype != jnp.dtype(tensor.dtype):
            raise ValueError(f"{where}.set_buffer: buffer {name!r} is {tensor.shape} {jnp.dtype(tensor.dtype)}, "
                             f"got {shape} {dtype}")
        self._state[name] = value
        if self._parent is not None:
            parent, my_name = self._parent
            parent._record(my_name, dict(self._state))

    def next_rng(self):
        """A fresh PRNG key for this call (``None`` when apply got ``rng=None``)."""
        if self._rng is None:
            return None
        self._calls += 1
        return jax.random.fold_in(self._rng, self._calls)


class Child:
    """``ctx.<name>``: apply the child (``ctx.conv(x)``) or reach into a container child.

    For a container child, ``handle[i]`` / ``handle['key']`` / ``handle.<name>`` give its children's
    handles and own tensors, ``len(handle)`` its size, ``for h in handle`` its children's handles
    (the keys for a :class:`ModuleDict`, as torch iterates), and ``keys()``/``values()``/``items()``.
    """

    def __init__(self, ctx: Context, name: str):
        self._ctx = ctx
        self._name = name

    def __call__(self, *inputs, **kwargs):
        return self._ctx(self._name, *inputs, **kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._ctx._sub(self._name), name)

    def _keys(self) -> list[str]:
        return list(self._ctx._sub(self._name)._module._children)

    def __getitem__(self, idx):
        sub = self._ctx._sub(self._name)
        keys = self._keys()
        if isinstance(idx, str):
            if idx not in keys:
                raise KeyError(f"{sub._path} ({type(sub._module).__name__}) has no child {idx!r} (children: {keys})")
            return Child(sub, idx)
        if not _checks.is_int(idx):
            raise TypeError(f"{sub._path}: index children with an int or a name, got {idx!r}")
        if not -len(keys) <= idx < len(keys):
            raise IndexError(f"{sub._path}: index {idx} is out of range for {len(keys)} children")
        return Child(sub, keys[idx])

    def __len__(self) -> int:
        return len(self._keys())

    def __iter__(self):
        if isinstance(self._ctx._module._children[self._name], ModuleDict):
            return iter(self._keys())
        return iter(self.values())

    def keys(self) -> list[str]:
        return self._keys()

    def values(self) -> list["Child"]:
        sub = self._ctx._sub(self._name)
        return [Child(sub, k) for k in self._keys()]

    def items(self) -> list[tuple[str, "Child"]]:
        return list(zip(self._keys(), self.values()))


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
        try:
            out, new_state = _unchecked_apply(layer)(layer, params, state, *inputs, train=train, rng=rng, **kwargs)
        except RngRequiredError as e:
            if not path or e.path:
                raise
            raise RngRequiredError(e.where, path) from None
    if hook is not None:
        hook(path, layer, inputs, out)
    return out, new_state


def _index_names(module: Module, where: str) -> int:
    """``len(module)``, after checking that its children are named ``"0"``, ``"1"``, … as insert needs."""
    names = list(module._children)
    if names != [str(i) for i in range(len(names))]:
        raise ValueError(f"{where}: children must be named '0', '1', ... to insert by index, got {names}")
    return len(names)


class _Indexed(Module):
    """Children named by position, as torch's Sequential and ModuleList: ``len``, iteration, append/extend/insert."""

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self):
        return iter(self._children.values())

    def append(self, layer: Layer):
        """Add ``layer`` at the end, named ``str(len(self))``; returns ``self`` as torch's."""
        self.add_module(str(len(self)), layer)
        return self

    def extend(self, layers):
        """Append each of ``layers`` (an iterable of layers, e.g. another Sequential); returns ``self``."""
        for layer in list(layers):
            self.append(layer)
        return self

    def insert(self, index: int, layer: Layer):
        """Insert ``layer`` before position ``index`` (negative counts from the end), renaming the rest."""
        where = f"{type(self).__name__}.insert"
        if not isinstance(layer, Layer):
            raise TypeError(f"{where}: expected a Layer, got {layer!r}")
        if not _checks.is_int(index):
            raise TypeError(f"{where}: index must be an int, got {index!r}")
        n = _index_names(self, where)
        if not -n <= index <= n:
            raise IndexError(f"{where}: index {index} is out of range for {n} layers")
        if index < 0:
            index += n
        layers = list(self._children.values())
        layers.insert(index, layer)
        for name in list(self._children):
            object.__delattr__(self, name)
        self._children.clear()
        for i, child in enumerate(layers):
            self.add_module(str(i), child)
        return self


class Sequential(_Indexed):
    """Apply children in order, like ``torch.nn.Sequential``.

    ``Sequential(a, b, c)`` names the children ``"0"``, ``"1"``, ``"2"``;
    ``Sequential(OrderedDict(conv=..., relu=...))`` uses the given names.
    Indexing (``seq[0]``, ``seq[1:]``), ``len``, ``append``, ``extend`` and
    ``insert`` work as in torch.
    """

    def __init__(self, *layers) -> None:
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (OrderedDict, dict)):
            for name, layer in layers[0].items():
                self.add_module(str(name), layer)
        else:
            for i, layer in enumerate(layers):
                self.add_module(str(i), layer)

    def __getitem__(self, idx):
        items = list(self._children.items())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(items[idx]))
        return items[idx][1]

    def forward(self, ctx: Context, x):
        for name in self._children:
            x = ctx(name, x)
        return x


class ModuleList(_Indexed):
    """Hold children named ``"0"``, ``"1"``, … as ``torch.nn.ModuleList``.

    It has no ``forward`` of its own: a parent calls its entries (``ctx.blocks[0](x)``,
    ``for blk in ctx.blocks: x = blk(x)``), or a subclass writes one (``ctx("0", x)``).
    """

    def __init__(self, layers=()) -> None:
        super().__init__()
        self.extend(layers)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._children.values())[idx])
        return list(self._children.values())[idx]


class ModuleDict(Module):
    """Hold children under string keys, as ``torch.nn.ModuleDict`` (insertion order; state_dict names are the keys).

    ``md['key']``, ``md['key'] = layer``, ``del md['key']``, ``in``, ``len``,
    iteration over the keys, ``keys()``, ``values()``, ``items()``, ``update()``,
    ``pop()`` and ``clear()`` as torch. A parent calls an entry with
    ``ctx.heads['cls'](x)``; a subclass's forward with ``ctx('cls', x)``.
    """

    def __init__(self, modules=None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Layer:
        try:
            return self._children[key]
        except KeyError:
            raise KeyError(f"ModuleDict has no key {key!r} (keys: {list(self._children)})") from None

    def __setitem__(self, key: str, layer: Layer) -> None:
        self.add_module(key, layer)

    def __delitem__(self, key: str) -> None:
        self[key]
        del self._children[key]
        object.__delattr__(self, key)

    def __len__(self) -> int:
        return len(self._children)

    def __iter__(self):
        return iter(list(self._children))

    def __contains__(self, key) -> bool:
        return key in self._children

    def keys(self):
        return list(self._children.keys())

    def values(self):
        return list(self._children.values())

    def items(self):
        return list(self._children.items())

    def clear(self) -> None:
        for key in list(self._children):
            del self[key]

    def pop(self, key: str) -> Layer:
        layer = self[key]
        del self[key]
        return layer

    def update(self, modules) -> None:
        """Add or replace entries from a mapping or an iterable of ``(key, layer)`` pairs."""
        items = modules.items() if hasattr(modules, "items") else modules
        for entry in items:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise TypeError(f"ModuleDict.update: expected (key, layer) pairs, got {entry!r}")
            key, layer = entry
            self.add_module(key, layer)
