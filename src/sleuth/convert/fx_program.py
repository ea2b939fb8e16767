"""Build-time: run a pickled ``torch.fx.GraphModule`` from its saved code, without executing that code.

SpeciesNet's PyTorch release is ``torch.save`` of an ``onnx2torch`` GraphModule (upstream converted its
Keras model with tf2onnx, then onnx2torch). Unpickling it normally calls
``torch.fx.graph_module.reduce_graph_module``, which ``exec``\\ s the saved ``forward`` source and imports
onnx2torch. Here the restricted unpickler (:mod:`sleuth.convert.unpickle`) turns that call into an inert
:class:`PickledGraph` (the module's state dict and its code as text); :func:`parse_program` reads the code
with :mod:`ast` (never ``exec``) into a list of steps, accepting only the statement forms torch.fx writes
(``x = getattr(self, "node")(a, b)``, ``x = self.initializers.onnx_initializer_0``, ``x = y[0]``,
``return x``); :class:`FxProgram` evaluates those steps with sleuth's own implementation of each layer
class the pickle may hold (:data:`LAYERS`: torch.nn and onnx2torch classes, by qualified name). Any other
statement, call or layer class is refused with an error naming it. torch is imported lazily.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sleuth.convert.fx_layers import CONTAINERS, FN_MARKERS, LAYERS, FnMarker, run_layer
from sleuth.convert.unpickle import CheckpointError, ModuleStub

__all__ = [
    "CONTAINERS",
    "FN_MARKERS",
    "LAYERS",
    "FnMarker",
    "FxProgram",
    "PickledGraph",
    "Step",
    "parse_program",
]


class PickledGraph:
    """What ``reduce_graph_module(body, import_block)`` would have rebuilt: kept as data, never run."""

    def __init__(self, body: Any, import_block: Any = "") -> None:
        if not isinstance(body, dict):
            raise CheckpointError("GraphModule state is not a dict")
        self.body = body
        self.import_block = import_block if isinstance(import_block, str) else ""

    @property
    def code(self) -> str:
        code = self.body.get("_code") or self.body.get("code")
        if not isinstance(code, str):
            raise CheckpointError("GraphModule has no saved forward code")
        return code

    @property
    def children(self) -> Mapping[str, ModuleStub]:
        mods = self.body.get("_modules") or {}
        return mods if isinstance(mods, Mapping) else {}


@dataclass
class Step:
    """One statement of the saved forward: ``target = <kind>(...)``."""

    target: str
    kind: str  # "module" (call a layer), "attr" (a stored tensor), "getitem", "alias"
    ref: str = ""  # the module path / attribute path / source name
    args: list[Any] = field(default_factory=list)  # ("ref", name) | ("const", value)
    kwargs: dict[str, Any] = field(default_factory=dict)
    index: int = 0
    line: int = 0


def _self_path(node: ast.expr) -> str | None:
    """``self.a.b`` -> ``"a.b"``; ``getattr(self, "x/y")`` -> ``"x/y"``; else None."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name) and node.id == "self":
        return ".".join(reversed(parts)) if parts else None
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "getattr"
        and len(node.args) == 2
        and not node.keywords
        and isinstance(node.args[1], ast.Constant)
        and isinstance(node.args[1].value, str)
    ):
        obj = node.args[0]
        base = "" if isinstance(obj, ast.Name) and obj.id == "self" else _self_path(obj)
        if base is None:
            return None
        name = f"{base}.{node.args[1].value}" if base else node.args[1].value
        tail = ".".join(reversed(parts))
        return f"{name}.{tail}" if tail else name
    return None


def _operand(node: ast.expr, line: int) -> Any:
    if isinstance(node, ast.Name):
        return ("ref", node.id)
    if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, int | float | str | bool)):
        return ("const", node.value)
    if isinstance(node, ast.Tuple | ast.List):
        return ("seq", [_operand(e, line) for e in node.elts])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return ("const", -node.operand.value)  # type: ignore[operator]
    raise CheckpointError(f"saved forward, line {line}: unsupported operand {ast.unparse(node)!r}")


def parse_program(code: str) -> tuple[list[str], list[Step], Any]:
    """The inputs, steps and returned operand of a torch.fx forward's source (parsed, never executed)."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        raise CheckpointError(f"saved forward code does not parse: {e}") from e
    fns = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    if len(fns) != 1 or fns[0].name != "forward":
        raise CheckpointError("saved code must define exactly one function, forward()")
    fn = fns[0]
    params = [a.arg for a in fn.args.args]
    if not params or params[0] != "self":
        raise CheckpointError("forward() must take self first")
    steps: list[Step] = []
    returned: Any = None
    for stmt in fn.body:
        line = stmt.lineno
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring
        if isinstance(stmt, ast.Return):
            if stmt.value is None:
                raise CheckpointError(f"saved forward, line {line}: returns nothing")
            returned = _operand(stmt.value, line)
            continue
        if not isinstance(stmt, ast.Assign):
            raise CheckpointError(f"saved forward, line {line}: unsupported statement {ast.unparse(stmt)!r}")
        if isinstance(stmt.value, ast.Constant) and stmt.value.value is None:
            continue  # ``a = b = None``: torch.fx freeing values
        if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
            raise CheckpointError(f"saved forward, line {line}: unsupported assignment {ast.unparse(stmt)!r}")
        target, value = stmt.targets[0].id, stmt.value
        path = _self_path(value)
        if path is not None:
            steps.append(Step(target, "attr", path, line=line))
        elif isinstance(value, ast.Call) and (mod := _self_path(value.func)) is not None:
            args = [_operand(a, line) for a in value.args]
            kwargs = {}
            for kw in value.keywords:
                if kw.arg is None:
                    raise CheckpointError(f"saved forward, line {line}: **kwargs are not supported")
                kwargs[kw.arg] = _operand(kw.value, line)
            steps.append(Step(target, "module", mod, args, kwargs, line=line))
        elif (
            isinstance(value, ast.Subscript)
            and isinstance(value.value, ast.Name)
            and isinstance(value.slice, ast.Constant)
            and isinstance(value.slice.value, int)
        ):
            steps.append(Step(target, "getitem", value.value.id, index=value.slice.value, line=line))
        elif isinstance(value, ast.Name):
            steps.append(Step(target, "alias", value.id, line=line))
        else:
            raise CheckpointError(f"saved forward, line {line}: unsupported expression {ast.unparse(value)!r}")
    if returned is None:
        raise CheckpointError("saved forward has no return statement")
    return params[1:], steps, returned


def _lookup(root: Mapping[str, Any], path: str) -> Any:
    """A submodule, or a tensor of one, by ``a.b`` path (names may contain '/' but not '.')."""
    head, _, rest = path.partition(".")
    node: Any = root.get(head)
    if node is None:
        raise CheckpointError(f"the saved forward names {head!r}, which the pickle does not hold")
    while rest:
        head, _, rest = rest.partition(".")
        if not isinstance(node, ModuleStub):
            raise CheckpointError(f"cannot look up {head!r} in {type(node).__name__}")
        d = node.__dict__
        for kind in ("_modules", "_parameters", "_buffers"):
            if head in (d.get(kind) or {}):
                node = d[kind][head]
                break
        else:
            if head in d:
                node = d[head]
            else:
                raise CheckpointError(f"{node.qualname} has no member {head!r}")
    return node


def _detach_all(graph: PickledGraph) -> None:
    """Parameters become plain tensors (inference only; tracing needs them without grad)."""
    from sleuth.convert.unpickle import iter_modules

    for top, stub in graph.children.items():
        if isinstance(stub, ModuleStub):
            for _, mod in iter_modules(stub, top):
                for kind in ("_parameters", "_buffers"):
                    store = mod.__dict__.get(kind) or {}
                    for k, v in list(store.items()):
                        if v is not None and hasattr(v, "detach"):
                            store[k] = v.detach()


def _torch_module_base() -> type:
    import torch

    return torch.nn.Module


class FxProgram:
    """The saved forward as a callable: ``FxProgram(graph).as_module()`` is a ``torch.nn.Module``."""

    def __init__(self, graph: PickledGraph) -> None:
        self.graph = graph
        self.inputs, self.steps, self.returned = parse_program(graph.code)
        _detach_all(graph)
        for st in self.steps:  # every layer must be known before anything runs
            if st.kind == "module":
                stub = _lookup(graph.children, st.ref)
                if not isinstance(stub, ModuleStub):
                    raise CheckpointError(f"saved forward, line {st.line}: {st.ref!r} is not a layer")
                if stub.qualname not in LAYERS:
                    raise CheckpointError(
                        f"layer {st.ref!r} is a {stub.qualname}, which sleuth has no implementation for"
                    )
            elif st.kind == "attr":
                _lookup(graph.children, st.ref)

    def layer_classes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for st in self.steps:
            if st.kind == "module":
                q = _lookup(self.graph.children, st.ref).qualname
                counts[q] = counts.get(q, 0) + 1
        return dict(sorted(counts.items()))

    def __call__(self, *inputs: Any) -> Any:
        if len(inputs) != len(self.inputs):
            raise TypeError(f"forward takes {len(self.inputs)} inputs, got {len(inputs)}")
        env: dict[str, Any] = dict(zip(self.inputs, inputs, strict=True))

        def val(op: Any) -> Any:
            kind, v = op
            if kind == "ref":
                if v not in env:
                    raise CheckpointError(f"saved forward uses {v!r} before it is assigned")
                return env[v]
            if kind == "seq":
                return [val(o) for o in v]
            return v

        for st in self.steps:
            if st.kind == "module":
                stub = _lookup(self.graph.children, st.ref)
                env[st.target] = run_layer(
                    stub, *[val(a) for a in st.args], **{k: val(v) for k, v in st.kwargs.items()}
                )
            elif st.kind == "attr":
                env[st.target] = _lookup(self.graph.children, st.ref)
            elif st.kind == "getitem":
                env[st.target] = env[st.ref][st.index]
            else:
                env[st.target] = env[st.ref]
        return val(self.returned)

    def as_module(self) -> Any:
        program = self
        base = _torch_module_base()

        class _Program(base):  # type: ignore[misc, valid-type]
            def forward(self, *xs: Any) -> Any:
                return program(*xs)

        return _Program().eval()


def tensors_of(graph: PickledGraph) -> dict[str, Any]:
    """Every parameter/buffer in the pickle, keyed like ``state_dict()`` (for counting and checks)."""
    from sleuth.convert.unpickle import iter_modules

    out: dict[str, Any] = {}
    for top, stub in graph.children.items():
        if not isinstance(stub, ModuleStub):
            continue
        for name, mod in iter_modules(stub, top):
            for kind in ("_parameters", "_buffers"):
                for k, v in (mod.__dict__.get(kind) or {}).items():
                    if v is not None:
                        out[f"{name}.{k}"] = v
    return out


def describe(graph: PickledGraph, inputs: Sequence[str] = ()) -> str:
    prog = FxProgram(graph)
    classes = ", ".join(f"{k.rsplit('.', 1)[-1]} x{v}" for k, v in prog.layer_classes().items())
    return f"{len(prog.steps)} steps, inputs {prog.inputs or list(inputs)}: {classes}"
