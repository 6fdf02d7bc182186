"""Convert a PyTorch CNN into readable fcnn source code and its weights.

:func:`convert` traces a ``torch.nn.Module`` with ``torch.fx`` symbolic tracing
(once in eval mode, once in train mode) and writes an fcnn model as Python
source: every torch module that ``fcnn.nn`` has a layer for becomes that layer,
every other module an ``nn.Module`` subclass with the torch module's child names
whose ``forward`` is the traced tensor code between its children, written with
``jnp`` and ``fcnn.functional``. The source is executed to give the model; the
weights come from ``module.state_dict()`` under the same keys.

Why ``torch.fx``: its graph keeps module boundaries (a ``call_module`` node is one
fcnn layer) and torch-level calls (``torch.cat``, ``F.interpolate``) that map one
to one onto fcnn's functional API, and it keeps shapes symbolic, so ``x.size(0)``
stays the batch size instead of the example's number. torchvision and timm keep
their CNNs FX-traceable (their feature extractors are built on it) and timm
registers the modules and functions FX must not enter; both registrations are
used. ``torch.export`` would give ATen operations (``aten.convolution``,
functionalised batch-norm buffer updates) that would have to be fused back into
layers. A module FX cannot trace through becomes a leaf and is reported, with
everything else unsupported, in one :class:`ConversionError`.

Behaviour that depends on ``module.training`` in torch code (``F.dropout(x,
training=self.training)``, ``if self.training:``) is captured by tracing both
modes: a module whose code differs between them gets ``if ctx.train: ... else:
...``.

:func:`save_converted` writes the source (``model.py``) and the weights
(``model.safetensors``); :func:`load_converted` reads them back without torch.
"""

from __future__ import annotations

import importlib.util
import keyword
import linecache
import operator
import re
import sys
import tempfile
import textwrap
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnn.interop import _codegen as cg

SOURCE_FILE = "model.py"
WEIGHTS_FILE = "model.safetensors"


class ConversionError(ValueError):
    """A torch module uses things fcnn cannot express; ``unsupported`` lists ``(module path, what)``."""

    def __init__(self, model_name: str, unsupported: list[tuple[str, str]]):
        self.unsupported = unsupported
        lines = "\n".join(f"  {path or '<root>'}: {what}" for path, what in unsupported)
        super().__init__(f"convert: {model_name} uses {len(unsupported)} thing(s) fcnn does not support:\n{lines}")


# ----------------------------------------------------------------------------- public API

def convert(module, example_input, *, name: str | None = None):
    """Convert a torch module into an fcnn model with the same parameters and buffers.

    Args:
      module: a ``torch.nn.Module`` (e.g. a torchvision or timm CNN).
      example_input: a ``torch.Tensor`` or a tuple of them, as ``module`` is
        called; used to trace it and to learn static channel counts (the batch
        size and spatial size of the converted model stay free).
      name: the name written in the generated source's docstring (default:
        the module's class name).

    Returns:
      ``(model, params, state)``: ``model`` follows the layer protocol
      (``model.apply(params, state, x, train=False)``); the ``"."``-joined keys
      of ``params`` and ``state`` are ``module.state_dict()``'s keys, with the
      same shapes and layouts (float32 parameters; integer buffers as in
      :func:`fcnn.interop.torch.load_state_dict`). ``source_of(model)`` is the
      generated Python source.

    Raises:
      TypeError: ``module`` is not a torch module or ``example_input`` not tensors.
      ConversionError: a ``ValueError`` listing every unsupported module and
        operation, each with its module path.
    """
    import torch

    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"convert: module must be a torch.nn.Module, got {type(module).__name__}")
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    if not inputs or not all(isinstance(t, torch.Tensor) for t in inputs):
        raise TypeError("convert: example_input must be a torch.Tensor or a non-empty tuple of them, got "
                        f"{type(example_input).__name__}")
    source = to_source(module, inputs, name=name)
    model = _instantiate(source, name or type(module).__name__)
    from fcnn.interop.torch import load_state_dict

    params, state = load_state_dict(model, module.state_dict())
    return model, params, state


def to_source(module, example_input, *, name: str | None = None) -> str:
    """The fcnn Python source :func:`convert` generates for ``module`` (a ``build()`` function returns the model)."""
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    was_training = module.training
    traces = {}
    try:
        for train in (False, True):
            module.train(train)
            traces[train] = _trace(module, inputs)
    finally:
        module.train(was_training)
    return _Writer(module, traces, name or type(module).__name__).source()


def source_of(model) -> str:
    """The generated source of a model returned by :func:`convert` or :func:`load_converted`."""
    source = model.__dict__.get("_converted_source")
    if source is None:
        raise ValueError(f"source_of: {type(model).__name__} was not made by fcnn.interop.torch.convert")
    return source


def save_converted(directory, model, params, state) -> Path:
    """Write ``model.py`` (the generated source) and ``model.safetensors`` (the weights) into ``directory``.

    Both files are written to temporary names and renamed into place, so a
    crash leaves either the old file or the new one. Returns the directory.
    """
    from fcnn._atomic import write_atomic
    from fcnn.interop.torch import state_dict, write_safetensors

    source = source_of(model)
    directory = Path(directory)
    tensors = state_dict(params, state, model=model)
    with tempfile.TemporaryDirectory() as tmp:  # write_safetensors writes a path; its bytes go in atomically
        write_safetensors(Path(tmp) / WEIGHTS_FILE, tensors, {"format": "fcnn"})
        weights = (Path(tmp) / WEIGHTS_FILE).read_bytes()
    write_atomic(directory / WEIGHTS_FILE, [weights])
    write_atomic(directory / SOURCE_FILE, [source.encode()])
    return directory


def load_converted(directory):
    """Load what :func:`save_converted` wrote: ``(model, params, state)``; torch is not needed.

    The source file is executed as a Python module (it is code: load only
    directories you trust, as with any ``.py`` file); the weights are read from
    the safetensors file, which executes nothing.
    """
    from fcnn.interop.torch import load_state_dict, read_safetensors

    directory = Path(directory)
    src_path, weights_path = directory / SOURCE_FILE, directory / WEIGHTS_FILE
    for path in (src_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"load_converted: no {path.name} in {directory}")
    source = src_path.read_text()
    spec = importlib.util.spec_from_file_location(f"fcnn_converted_{abs(hash(str(src_path.resolve())))}", src_path)
    namespace = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(namespace)
    model = namespace.build()
    object.__setattr__(model, "_converted_source", source)
    params, state = load_state_dict(model, read_safetensors(weights_path))
    return model, params, state


def _instantiate(source: str, name: str):
    filename = f"<fcnn converted {name}>"
    # linecache lets tracebacks through the generated code show its lines.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"fcnn_converted_{cg.identifier(name)}"}
    exec(compile(source, filename, "exec"), namespace)
    model = namespace["build"]()
    object.__setattr__(model, "_converted_source", source)
    return model


# ----------------------------------------------------------------------------- tracing

@dataclass
class _Trace:
    graph: Any  # torch.fx.Graph
    failed: dict[str, str]  # module path -> why FX could not trace through it
    module: Any
    inputs: tuple
    train: bool
    _shapes: dict | None = None

    def shape(self, node) -> tuple | None:
        """The static shape of a traced tensor for the example input; the graph runs once, on the first request."""
        if self._shapes is None:
            was_training = self.module.training
            self.module.train(self.train)
            try:
                self._shapes = _shapes(self.module, self.graph, self.inputs)
            finally:
                self.module.train(was_training)
        return self._shapes.get(node)


def _timm_functions() -> list:
    """The functions timm asks FX not to trace into (when timm has been imported): they stay calls.

    timm's FX leaf *modules* are traced into all the same: most are batch-norm or padding code
    on their own tensors, which the converter writes (``ctx.set_buffer`` for statistics), and one
    that FX cannot trace becomes a leaf and is reported.
    """
    fx = sys.modules.get("timm.layers._fx")
    return [] if fx is None else [f for f in fx.get_notrace_functions() if callable(f)]


def _trace(module, inputs) -> _Trace:
    import torch
    import torch.fx

    functions = _timm_functions()
    containers = (torch.nn.Sequential, torch.nn.ModuleList, torch.nn.ModuleDict)

    class Tracer(torch.fx.Tracer):
        def __init__(self):
            super().__init__(autowrap_functions=tuple(functions),
                             param_shapes_constant=True)
            self.failed: dict[str, str] = {}
            self.abandoned: list = []

        def is_leaf_module(self, m, qualname):
            if qualname in self.failed or cg.layer_spec(m) is not None:
                return True
            # torch.nn's own layers are leaves: those fcnn has no layer for are reported, never traced into.
            return type(m).__module__.startswith("torch.nn.") and not isinstance(m, containers)

        def call_module(self, m, forward, args, kwargs):
            qualname = self.path_of_module(m)
            if self.is_leaf_module(m, qualname):
                return super().call_module(m, forward, args, kwargs)
            before = set(self.graph.nodes)
            stack, calls = OrderedDict(self.module_stack), dict(self.num_calls)
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception as e:  # noqa: BLE001 - any failure inside makes the module a leaf, reported later
                self.module_stack.clear()
                self.module_stack.update(stack)
                self.num_calls = calls
                self.abandoned.extend(n for n in self.graph.nodes if n not in before)
                self.failed[qualname] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                return super().call_module(m, forward, args, kwargs)

    tracer = Tracer()
    try:
        graph = tracer.trace(module)
    except Exception as e:
        raise ConversionError(type(module).__name__, [("", f"torch.fx cannot trace the top-level forward "
                                                            f"({type(e).__name__}: {e})")]) from e
    _rebind_in_place(graph, module)
    _eliminate_dead_code(graph, set(tracer.abandoned))
    return _Trace(graph, tracer.failed, module, inputs, module.training)


_IN_PLACE_OPERATORS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}


def _rebind_in_place(graph, root) -> None:
    """After an in-place op (``x.add_(y)``, ``F.relu(x, inplace=True)``), later uses of ``x`` read its result.

    FX records the op but keeps handing out the old value to later code; torch's
    later reads see the mutated tensor.
    """
    import torch.fx

    replace: dict = {}
    for node in graph.nodes:
        if replace:
            node.args = torch.fx.node.map_arg(node.args, lambda n: replace.get(n, n))
            node.kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: replace.get(n, n))
        target = None
        if node.op == "call_method" and node.target.endswith("_") and not node.target.startswith("_"):
            target = node.args[0]
        elif node.op == "call_function" and (node.target in _IN_PLACE_OPERATORS or node.kwargs.get("inplace") is True):
            target = node.args[0] if node.args else node.kwargs.get("input")
        elif node.op == "call_module" and getattr(root.get_submodule(node.target), "inplace", False) is True:
            target = node.args[0] if node.args else None
        if isinstance(target, torch.fx.Node):
            for k, v in list(replace.items()):
                if v is target:
                    replace[k] = node
            replace[target] = node


def _eliminate_dead_code(graph, abandoned: set) -> None:
    """Drop unused glue and what an abandoned trace attempt left; layer calls stay (BN updates its statistics)."""
    changed = True
    while changed:
        changed = False
        for node in reversed(list(graph.nodes)):
            if node.users or node.op in ("placeholder", "output"):
                continue
            if node.op in ("call_function", "call_method", "get_attr") or node in abandoned:
                graph.erase_node(node)
                changed = True


def _shapes(module, graph, inputs) -> dict:
    """Static shapes of every traced tensor for the example input (run by FX's interpreter, torch state kept)."""
    import torch
    import torch.fx

    saved = {k: v.clone() for k, v in module.state_dict().items()}
    shapes: dict = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if isinstance(out, torch.Tensor):
                shapes[n] = tuple(out.shape)
            return out

    try:
        with torch.no_grad(), torch.random.fork_rng():
            Recorder(torch.fx.GraphModule(module, graph)).run(*inputs)
    except Exception as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ConversionError(type(module).__name__, [("", f"the traced graph fails on the example input "
                                                            f"({type(e).__name__}: {first_line})")]) from e
    finally:
        module.load_state_dict(saved)
    return shapes


# ----------------------------------------------------------------------------- scopes: one per module call

@dataclass(eq=False)
class _Scope:
    """One call of a traced-through module: its nodes and the calls of its children, in order."""

    key: str  # FX's module key: path, with "@n" for the n-th repeated call
    path: str
    module: Any
    parent: "_Scope | None"
    items: list = field(default_factory=list)  # fx.Node (own op or leaf call) or _Scope
    children: dict = field(default_factory=dict)


def _scopes(root_module, graph) -> tuple[_Scope, dict]:
    root = _Scope("", "", root_module, None)
    owner: dict = {}
    for node in graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        stack = list(node.meta.get("nn_module_stack", {}).items())
        if node.op == "call_module" and stack and stack[-1][1][0] == node.target:
            stack = stack[:-1]
        scope = root
        for key, (path, _) in stack:
            child = scope.children.get(key)
            if child is None:
                child = _Scope(key, path, root_module.get_submodule(path), scope)
                scope.children[key] = child
                scope.items.append(child)
            scope = child
        scope.items.append(node)
        owner[node] = scope
    return root, owner


def _within(scope: _Scope, inner: _Scope | None) -> bool:
    while inner is not None:
        if inner is scope:
            return True
        inner = inner.parent
    return False


def _relative(path: str, base: str) -> str:
    return path[len(base) + 1:] if base else path


# ----------------------------------------------------------------------------- writing the source

_INDENT = "    "


@dataclass
class _Forward:
    """A module's generated forward for one mode."""

    inputs: list[str]
    body: list[str]
    unsupported: list[tuple[str, str]]


class _Writer:
    """Turns the eval and train traces of one torch module into fcnn source."""

    def __init__(self, module, traces: dict, name: str):
        self.module = module
        self.traces = traces
        self.name = name
        self.unsupported: list[tuple[str, str]] = []
        self.called: set[str] = set()  # paths of modules called as a whole (leaves and traced scopes)
        # path -> {train: _Forward}: one generated forward per module and mode
        self.forwards: dict[str, dict[bool, _Forward]] = {}
        for train, trace in traces.items():
            for path, why in trace.failed.items():
                cls = type(module.get_submodule(path))
                self._unsupported(path, f"{cls.__module__}.{cls.__qualname__} (torch.fx cannot trace it: {why})")
            root, owner = _scopes(module, trace.graph)
            self._walk(root, owner, trace, train)

    def _unsupported(self, path: str, what: str) -> None:
        if (path, what) not in self.unsupported:
            self.unsupported.append((path, what))

    # -- forward bodies

    def _walk(self, scope: _Scope, owner, trace: _Trace, train: bool) -> None:
        fwd = self._forward(scope, owner, trace, train)
        done = self.forwards.setdefault(scope.path, {})
        if train in done and done[train].body != fwd.body:
            self._unsupported(scope.path, "the module is called several times with different code")
        done[train] = fwd
        self.called.add(scope.path)
        for item in scope.items:
            if isinstance(item, _Scope):
                self._walk(item, owner, trace, train)

    def _interface(self, scope: _Scope, owner, graph) -> tuple[list, list]:
        """The values a module call reads from outside, and those it gives back, in graph order."""
        inside = [n for n, s in owner.items() if _within(scope, s)]
        inside_set = set(inside)
        inputs, outputs = [], []
        for n in inside:
            for a in n.all_input_nodes:
                if a not in inside_set and a.op != "get_attr" and a not in inputs:
                    inputs.append(a)
            if any(u not in inside_set for u in n.users):
                outputs.append(n)
        return inputs, outputs

    def _forward(self, scope: _Scope, owner, trace: _Trace, train: bool) -> _Forward:
        graph = trace.graph
        names: dict = {}
        used = set(cg.RESERVED)

        def fresh(base: str) -> str:
            base = cg.identifier(base)
            name, i = base, 1
            while name in used:
                name, i = f"{base}_{i}", i + 1
            used.add(name)
            return name

        if scope.parent is None:
            inputs = [n for n in graph.nodes if n.op == "placeholder"]
            outputs = None
            input_names = [fresh(_fx_name(n)) for n in inputs]
        else:
            inputs, outputs = self._interface(scope, owner, graph)
            input_names = [fresh("x") for _ in inputs] if len(inputs) == 1 else [fresh(f"x{i}") for i in
                                                                                  range(len(inputs))]
        names.update(zip(inputs, input_names))
        body: list[str] = []
        unsupported: list[tuple[str, str]] = []

        def ref(node) -> str:
            if node.op == "get_attr":
                return self._own_tensor(scope, node.target, unsupported)
            return names[node]

        cx = cg.GlueContext(names=ref, train=train, shape=trace.shape)
        for item in scope.items:
            if isinstance(item, _Scope):
                child_in, child_out = self._interface(item, owner, graph)
                call = self._ctx_call(scope.path, item.path)
                outs = [fresh(cg.identifier(_relative(item.path, scope.path).replace(".", "_"))) for _ in child_out]
                names.update(zip(child_out, outs))
                args = ", ".join(ref(a) for a in child_in)
                if outs:
                    body.append(f"{', '.join(outs)} = {call}{args})")
                else:
                    body.append(f"{call}{args})")
                continue
            node = item
            if node.op == "call_module":
                self.called.add(node.target)
                sub = self.module.get_submodule(node.target)
                if cg.layer_spec(sub) is None and node.target not in trace.failed:
                    cls = type(sub)
                    unsupported.append((node.target, f"{cls.__module__}.{cls.__qualname__} (no fcnn layer)"))
                call = self._ctx_call(scope.path, node.target)
                args = [cg.literal(a, ref) for a in node.args] + \
                       [f"{k}={cg.literal(v, ref)}" for k, v in node.kwargs.items()]
                name = fresh(_relative(node.target, scope.path).split(".")[-1])
                names[node] = name
                body.append(f"{name} = {call}{', '.join(args)})")
                continue
            if _is_batch_norm(node):
                body += self._batch_norm(node, scope, names, fresh, ref)
                continue
            code = cg.glue(node.op, node.target, node.args, node.kwargs, cx)
            if isinstance(code, cg.Unsupported):
                unsupported.append((scope.path, code.what))
                names[node] = "None"
            elif isinstance(code, cg.Alias):
                names[node] = str(code.value) if isinstance(code.value, cg.Code) else ref(code.value)
            elif code is cg.SKIP:
                continue
            else:
                name = fresh(_value_name(node, names))
                names[node] = name
                body.append(f"{name} = {code}")
                buffer = self._updated_buffer(node, scope)
                if buffer:  # x.add_(1) on the module's own buffer (timm's num_batches_tracked)
                    body.append(f"ctx.set_buffer({buffer!r}, {name})")
        if outputs is None:
            out_node = next(n for n in graph.nodes if n.op == "output")
            body.append(f"return {cg.literal(out_node.args[0], ref)}")
        elif outputs:
            body.append(f"return {', '.join(ref(n) for n in outputs)}")
        else:
            body.append("return None")
        for u in unsupported:
            self._unsupported(*u)
        return _Forward(input_names, body, unsupported)

    def _updated_buffer(self, node, scope: _Scope) -> str | None:
        """The own buffer an in-place method or operator writes, if its target is one."""
        if not (node.op == "call_method" and node.target.endswith("_")) and node.target not in _IN_PLACE_OPERATORS:
            return None
        target = node.args[0] if node.args else None
        if getattr(target, "op", None) != "get_attr":
            return None
        name = _relative(target.target, scope.path)
        return name if name in scope.module._buffers else None

    def _batch_norm(self, node, scope: _Scope, names: dict, fresh, ref) -> list[str]:
        """``F.batch_norm`` on the module's own tensors: fcnn returns the new statistics, stored with set_buffer."""
        b = cg.bind_args(node.args, node.kwargs, ("input", "running_mean", "running_var", "weight", "bias",
                                                   "training", "momentum", "eps"),
                         {"running_mean": None, "running_var": None, "weight": None, "bias": None,
                          "training": False, "momentum": 0.1, "eps": 1e-5})
        args = ", ".join(cg.literal(b[k], ref) for k in ("input", "running_mean", "running_var", "weight", "bias"))
        out, mean, var = fresh("batch_norm"), fresh("running_mean"), fresh("running_var")
        names[node] = out
        lines = [f"{out}, {mean}, {var} = F.batch_norm({args}, training={b['training']!r}, "
                 f"momentum={b['momentum']!r}, eps={b['eps']!r})"]
        if b["training"]:
            for key, value in (("running_mean", mean), ("running_var", var)):
                stat = b[key]
                if getattr(stat, "op", None) == "get_attr":
                    lines.append(f"ctx.set_buffer({_relative(stat.target, scope.path)!r}, {value})")
        return lines

    def _own_tensor(self, scope: _Scope, target: str, unsupported: list) -> str:
        """``ctx.layer_scale`` for a parameter or persistent buffer of the module itself."""
        name = _relative(target, scope.path)
        m = scope.module
        if target.startswith(scope.path) and "." not in name:
            if m._parameters.get(name) is not None or (
                    m._buffers.get(name) is not None and name not in m._non_persistent_buffers_set):
                return f"ctx.{name}" if name.isidentifier() and not keyword.iskeyword(name) else \
                    f"getattr(ctx, {name!r})"
            if name in m._buffers:
                unsupported.append((scope.path, f"non-persistent buffer {name!r} (not in the state_dict)"))
                return "None"
        unsupported.append((scope.path, f"tensor {target!r} of another module read outside it"))
        return "None"

    def _ctx_call(self, base: str, path: str) -> str:
        """``ctx.conv1(`` for a child; ``ctx.blocks[0](`` for a module inside a container child."""
        parts = _relative(path, base).split(".")
        if not (parts[0].isidentifier() and not keyword.iskeyword(parts[0])):
            return f"ctx({'.'.join(parts)!r}, "
        expr = f"ctx.{parts[0]}"
        parent = self.module.get_submodule(_join(base, parts[0]))
        for part in parts[1:]:
            if isinstance(parent, _container_types()["indexed"]) and part.isdigit():
                expr += f"[{part}]"
            elif isinstance(parent, _container_types()["dict"]) or not part.isidentifier() or keyword.iskeyword(part):
                expr += f"[{part!r}]"
            else:
                expr += f".{part}"
            parent = parent.get_submodule(part)
        return expr + "("

    # -- classes and the build() expression

    def source(self) -> str:
        classes: OrderedDict[str, str] = OrderedDict()  # class name -> class source
        variants: dict[tuple, str] = {}  # (torch class, children, forward text) -> class name
        build = self._construct(self.module, "", classes, variants)
        if self.unsupported:
            raise ConversionError(self.name, self.unsupported)
        cls = type(self.module)
        header = textwrap.dedent(f'''\
            """{self.name}: fcnn source generated from {cls.__module__}.{cls.__qualname__} by fcnn.interop.torch.convert.

            ``build()`` returns the model; ``fcnn.interop.torch.load_converted(directory)`` builds it and loads the
            weights saved next to this file.
            """

            import jax
            import jax.numpy as jnp

            from fcnn import functional as F
            from fcnn import nn
            ''')
        parts = [header]
        parts.extend(classes.values())
        parts.append(f"def build():\n{_INDENT}return " + build.replace("\n", "\n" + _INDENT) + "\n")
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)

    def _construct(self, m, path: str, classes, variants) -> str:
        """The constructor expression of ``m`` (at ``path``) for ``build()``, writing its classes on the way."""
        import torch

        spec = cg.layer_spec(m)
        if spec is not None:
            code = cg.layer_code(m, spec)
            if isinstance(code, cg.Unsupported):
                self._unsupported(path, code.what)
                return "None"
            return code
        children = [(name, self._construct(c, _join(path, name), classes, variants))
                    for name, c in m.named_children()]
        called = path in self.forwards
        if not called and path in self.called:  # a leaf without an fcnn layer: reported where it is called
            return "None"
        own = self._own_tensors(m)
        if isinstance(m, torch.nn.ModuleList) and not own and not called:
            return _call_expr("nn.ModuleList", [_list_expr([c for _, c in children])])
        if isinstance(m, torch.nn.ModuleDict) and not own and not called:
            return _call_expr("nn.ModuleDict", [_dict_expr(children)])
        if type(m).forward is torch.nn.Sequential.forward and not own:
            if [n for n, _ in children] == [str(i) for i in range(len(children))]:
                return _call_expr("nn.Sequential", [c for _, c in children])
            return _call_expr("nn.Sequential", [_dict_expr(children)])
        args = own + children
        cls_name = self._class(m, path, [n for n, _ in args], classes, variants)
        if all(n.isidentifier() and not keyword.iskeyword(n) and n != "self" for n, _ in args):
            return _call_expr(cls_name, [f"{n}={c}" for n, c in args])
        return _call_expr(cls_name, [_dict_expr(args)])

    def _own_tensors(self, m) -> list[tuple[str, str]]:
        """``nn.Parameter(...)`` / ``nn.Buffer(...)`` for the module's own tensors (values come from the weights)."""
        out = []
        for name, p in m._parameters.items():
            if p is not None:
                out.append((name, f"nn.Parameter({cg.literal(tuple(p.shape))}, nn.init.zeros"
                                  f"{_dtype_arg(p.dtype)})"))
        for name, b in m._buffers.items():
            if b is not None and name not in m._non_persistent_buffers_set:
                out.append((name, f"nn.Buffer({cg.literal(tuple(b.shape))}, nn.init.zeros{_dtype_arg(b.dtype)})"))
        return out

    def _class(self, m, path: str, child_names: list[str], classes, variants) -> str:
        modes = self.forwards.get(path, {})
        eval_fwd, train_fwd = modes.get(False), modes.get(True)
        fwd = eval_fwd or train_fwd
        if fwd is None:  # only its children are called (or nothing): a holder of their parameters
            fwd = _Forward([], [], [])
            body = []
        elif eval_fwd is not None and train_fwd is not None and eval_fwd.body != train_fwd.body:
            if eval_fwd.inputs != train_fwd.inputs:
                self._unsupported(path, "the module takes different inputs in train and eval mode")
            body = (["if ctx.train:"] + [_INDENT + line for line in train_fwd.body] + ["else:"]
                    + [_INDENT + line for line in eval_fwd.body])
        else:
            body = fwd.body
        cls = type(m)
        key = (cls.__module__, cls.__qualname__, tuple(child_names), tuple(fwd.inputs), tuple(body))
        if key in variants:
            return variants[key]
        base = cg.identifier(cls.__name__)
        name, i = base, 2
        taken = set(classes)
        while name in taken:
            name, i = f"{base}_{i}", i + 1
        variants[key] = name
        identifiers = all(n.isidentifier() and not keyword.iskeyword(n) and n != "self" for n in child_names)
        doc = f"{cls.__module__}.{cls.__qualname__}" + ("" if body else ": only its children are called")
        lines = [f"class {name}(nn.Module):", f'{_INDENT}"""{doc}."""', ""]
        if child_names:
            if identifiers:
                lines.append(f"{_INDENT}def __init__(self, {', '.join(child_names)}):")
                lines.append(f"{_INDENT * 2}super().__init__()")
                lines += [f"{_INDENT * 2}self.{n} = {n}" for n in child_names]
            else:
                lines.append(f"{_INDENT}def __init__(self, children):")
                lines.append(f"{_INDENT * 2}super().__init__()")
                lines.append(f"{_INDENT * 2}for name, child in children.items():")
                lines.append(f"{_INDENT * 3}self.add_module(name, child)")
            lines.append("")
        if body:
            lines.append(f"{_INDENT}def forward(self, ctx{''.join(', ' + a for a in fwd.inputs)}):")
            lines += [_INDENT * 2 + line for line in body]
        elif lines[-1] == "":
            lines.pop()
        classes[name] = "\n".join(lines) + "\n"
        return name


def _is_batch_norm(node) -> bool:
    return node.op == "call_function" and getattr(node.target, "__name__", "") == "batch_norm" and \
        getattr(node.target, "__module__", "").startswith("torch.nn.functional")


def _value_name(node, names: dict) -> str:
    """A readable local name: ``chunk_0`` for ``chunk[0]``, ``shape`` for ``x.shape``, else FX's name."""
    if node.target is operator.getitem and isinstance(node.args[1], int) and node.args[0] in names:
        return f"{names[node.args[0]]}_{node.args[1]}"
    if node.target is getattr:
        return str(node.args[1])
    return _fx_name(node)


def _fx_name(node) -> str:
    """FX's node name without the counter it appends to repeated names (``add_3`` -> ``add``)."""
    return re.sub(r"_\d+$", "", node.name) or "v"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _container_types() -> dict:
    import torch

    return {"indexed": (torch.nn.Sequential, torch.nn.ModuleList), "dict": (torch.nn.ModuleDict,)}


def _dtype_arg(dtype) -> str:
    code = cg.literal(dtype)
    if code == "jnp.int64":  # as fcnn's own layers: torch's int64 counters are int32 unless x64 is on
        code = "jnp.int32"
    return "" if code == "jnp.float32" else f", dtype={code}"


def _block(open_: str, items: list[str], close: str) -> str:
    """``f(a, b)`` on one line when short, else one item per line (items may span lines themselves)."""
    one_line = open_ + ", ".join(items) + close
    if len(one_line) <= 100 and "\n" not in one_line:
        return one_line
    return open_ + "\n" + "".join(textwrap.indent(item, _INDENT) + ",\n" for item in items) + close


def _list_expr(items: list[str]) -> str:
    return _block("[", items, "]")


def _dict_expr(items: list[tuple[str, str]]) -> str:
    return _block("{", [f"{n!r}: {c}" for n, c in items], "}")


def _call_expr(fn: str, args: list[str]) -> str:
    return _block(f"{fn}(", args, ")")
