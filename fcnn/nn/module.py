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
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable, Iterator

import jax

Params = dict
State = dict

# hook(path, layer, inputs, output) is called after every layer application
# when a model is run through :func:`apply_with_hook` (used by fcnn.summary).
Hook = Callable[[str, "Layer", tuple, Any], None]


class Layer:
    """Base class of every fcnn layer: ``init(key)`` and ``apply(...)``.

    Subclasses without parameters or buffers only override :meth:`apply`.
    """

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
        raise TypeError(f"{where}: train must be a Python bool, got {train!r}")
    return train


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
        return apply_with_hook(self, params, state, *inputs, train=train, rng=rng, **kwargs)

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
        out, new_state = apply_with_hook(
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
    if isinstance(layer, Module):
        check_train(train, type(layer).__name__)
        ctx = Context(layer, params, state, train, rng, hook, path)
        out = layer.forward(ctx, *inputs, **kwargs)
        new_state = ctx._state
    else:
        out, new_state = layer.apply(params, state, *inputs, train=train, rng=rng, **kwargs)
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
