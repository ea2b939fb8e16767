"""Build-time: sleuth's own implementation of each layer class a pickled onnx2torch GraphModule may hold.

:data:`LAYERS` maps a qualified class name (``torch.nn.modules.conv.Conv2d``,
``onnx2torch.node_converters.binary_math_operations.OnnxBinaryMathOperation``, ...) to a function of the
layer's unpickled state (a :class:`~sleuth.convert.unpickle.ModuleStub`) and its inputs, written from the
ONNX operator semantics each class stands for. Functions the pickle stores in a layer (``torch.add``,
``torch.mean``) arrive as :class:`FnMarker` names, never as callables. torch is imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sleuth.convert.unpickle import CheckpointError, ModuleStub


@dataclass(frozen=True)
class FnMarker:
    """A function the pickle names (``torch.add``, onnx2torch's ``_onnx_div``), kept as a name only."""

    name: str


# pickled function name -> operation (as onnx2torch's modules hold them in math_op_function / function)
FN_MARKERS: dict[str, str] = {
    **{f"torch.{n}": n for n in ("add", "sub", "mul", "div", "mean", "sum", "max", "min", "prod", "matmul")},
    **{
        f"torch.{n}": n
        for n in ("abs", "exp", "log", "sqrt", "tanh", "sin", "cos", "tan", "sign", "neg", "sigmoid", "erf")
    },
    "torch.acos": "acos",
    "torch.asin": "asin",
    "torch.atan": "atan",
    "onnx2torch.node_converters.binary_math_operations._onnx_div": "div",
}


# ----------------------------------------------------------------------------------------------
# Layers: qualified class name -> implementation(stub, tensors_of(stub), *args, **kwargs)


def _st(stub: ModuleStub, key: str, default: Any = None) -> Any:
    return stub.__dict__.get(key, default)


def _tensor(stub: ModuleStub, kind: str, name: str) -> Any:
    return (_st(stub, kind) or {}).get(name)


def _pair(v: Any) -> Any:
    return tuple(v) if isinstance(v, list | tuple) else v


def _conv2d(stub: ModuleStub, x: Any) -> Any:
    import torch.nn.functional as F  # noqa: N812

    padding = _st(stub, "padding", 0)
    mode = _st(stub, "padding_mode", "zeros")
    if mode != "zeros":
        raise CheckpointError(f"{stub.qualname}: padding_mode {mode!r} is not supported")
    return F.conv2d(
        x,
        _tensor(stub, "_parameters", "weight"),
        _tensor(stub, "_parameters", "bias"),
        _pair(_st(stub, "stride", 1)),
        padding if isinstance(padding, str) else _pair(padding),
        _pair(_st(stub, "dilation", 1)),
        int(_st(stub, "groups", 1)),
    )


def _batch_norm(stub: ModuleStub, x: Any) -> Any:
    import torch.nn.functional as F  # noqa: N812

    return F.batch_norm(
        x,
        _tensor(stub, "_buffers", "running_mean"),
        _tensor(stub, "_buffers", "running_var"),
        _tensor(stub, "_parameters", "weight"),
        _tensor(stub, "_parameters", "bias"),
        False,
        0.0,
        float(_st(stub, "eps", 1e-5)),
    )


def _linear(stub: ModuleStub, x: Any) -> Any:
    import torch.nn.functional as F  # noqa: N812

    return F.linear(x, _tensor(stub, "_parameters", "weight"), _tensor(stub, "_parameters", "bias"))


def _fn_of(stub: ModuleStub, key: str) -> str:
    fn = _st(stub, key)
    if not isinstance(fn, FnMarker):
        raise CheckpointError(f"{stub.qualname}: {key} is not a known function ({fn!r})")
    return fn.name


def _binary(stub: ModuleStub, a: Any, b: Any) -> Any:
    import torch

    if _st(stub, "broadcast") == 1 and _st(stub, "axis") is not None:
        raise CheckpointError(f"{stub.qualname}: old-style broadcast (opset < 7) is not supported")
    op = _fn_of(stub, "math_op_function")
    if op == "div":
        if not (a.is_floating_point() or b.is_floating_point()):
            return torch.div(a, b, rounding_mode="trunc")
        return torch.div(a, b)
    if op not in ("add", "sub", "mul"):
        raise CheckpointError(f"{stub.qualname}: unsupported operation {op!r}")
    return getattr(torch, op)(a, b)


def _reduce(stub: ModuleStub, x: Any) -> Any:
    import torch

    op = _fn_of(stub, "math_op_function")
    axes = _st(stub, "axes")
    keep = bool(_st(stub, "keepdims", True))
    if axes is None:
        axes = list(range(x.dim()))
    if op in ("mean", "sum"):
        return getattr(torch, op)(x, dim=list(axes), keepdim=keep)
    if op in ("max", "min", "prod"):
        out = x
        for ax in sorted((a % x.dim() for a in axes), reverse=True):
            r = getattr(torch, op)(out, dim=ax, keepdim=keep)
            out = r if op == "prod" else r.values
        return out
    raise CheckpointError(f"{stub.qualname}: unsupported reduction {op!r}")


def _reduce_sum(stub: ModuleStub, x: Any) -> Any:
    import torch

    axes = _st(stub, "_axes")
    if not axes:
        if _st(stub, "_noop_with_empty_axes"):
            return x
        axes = list(range(x.dim()))
    return torch.sum(x, dim=list(axes), keepdim=bool(_st(stub, "_keepdims", 1)))


def _squeeze(stub: ModuleStub, x: Any) -> Any:
    axes = _st(stub, "axes")
    if not axes:
        return x.squeeze()
    for ax in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(ax)
    return x


def _squeeze_dynamic(stub: ModuleStub, x: Any, axes: Any = None) -> Any:
    if axes is None or axes.numel() == 0:
        return x.squeeze()
    for ax in sorted((int(a) % x.dim() for a in axes.tolist()), reverse=True):
        x = x.squeeze(ax)
    return x


def _unsqueeze(stub: ModuleStub, x: Any) -> Any:
    for ax in sorted(_st(stub, "_axes") or []):
        x = x.unsqueeze(ax)
    return x


def _reshape(stub: ModuleStub, x: Any, shape: Any) -> Any:
    dims = [int(v) for v in shape.tolist()]
    dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
    return x.reshape(dims)


def _transpose(stub: ModuleStub, x: Any) -> Any:
    perm = _st(stub, "perm")
    return x.permute(list(perm) if perm is not None else list(range(x.dim()))[::-1])


def _gemm(stub: ModuleStub, a: Any, b: Any, c: Any = None) -> Any:
    if _st(stub, "trans_a"):
        a = a.transpose(0, 1)
    if _st(stub, "trans_b"):
        b = b.transpose(0, 1)
    out = float(_st(stub, "alpha", 1.0)) * (a @ b)
    if c is not None:
        out = out + float(_st(stub, "beta", 1.0)) * c
    return out


def _pad(stub: ModuleStub, x: Any) -> Any:
    import torch.nn.functional as F  # noqa: N812

    mode = _st(stub, "mode", "constant")
    value = _st(stub, "constant_value", 0.0)
    return F.pad(x, list(_st(stub, "pads")), mode=mode, value=float(value) if mode == "constant" else None)


def _softmax_onnx(stub: ModuleStub, x: Any) -> Any:
    import torch

    axis = int(_st(stub, "axis", 1)) % x.dim()
    shape = x.shape
    flat = x.reshape(int(torch.tensor(shape[:axis]).prod()) if axis else 1, -1)
    out = torch.log_softmax(flat, dim=1) if _st(stub, "is_log") else torch.softmax(flat, dim=1)
    return out.reshape(shape)


def _function(stub: ModuleStub, x: Any) -> Any:
    import torch

    op = _fn_of(stub, "function")
    return getattr(torch, op)(x)


def _sequential(stub: ModuleStub, x: Any) -> Any:
    for child in stub.children.values():
        x = run_layer(child, x)
    return x


def _global_avg(stub: ModuleStub, x: Any) -> Any:
    return x.mean(dim=list(range(2, x.dim())), keepdim=True)


def _max_pool(stub: ModuleStub, x: Any) -> Any:
    import torch.nn.functional as F  # noqa: N812

    return F.max_pool2d(
        x,
        _pair(_st(stub, "kernel_size")),
        _pair(_st(stub, "stride")),
        _pair(_st(stub, "padding", 0)),
        _pair(_st(stub, "dilation", 1)),
        bool(_st(stub, "ceil_mode", False)),
    )


def _torch(name: str) -> Callable[..., Any]:
    def run(stub: ModuleStub, x: Any) -> Any:
        import torch

        return getattr(torch, name)(x)

    return run


def _hard_sigmoid(stub: ModuleStub, x: Any) -> Any:
    return (x * float(_st(stub, "alpha")) + float(_st(stub, "beta"))).clamp(0.0, 1.0)


def _clip(stub: ModuleStub, x: Any, lo: Any = None, hi: Any = None) -> Any:
    lo = _st(stub, "min_val") if lo is None else lo
    hi = _st(stub, "max_val") if hi is None else hi
    return x.clamp(lo, hi)


def _concat(stub: ModuleStub, *xs: Any) -> Any:
    import torch

    return torch.cat(list(xs), int(_st(stub, "axis")))


def _identity(stub: ModuleStub, x: Any) -> Any:
    return x


def _flatten(stub: ModuleStub, x: Any) -> Any:
    if "axis" in stub.__dict__:  # OnnxFlatten: ONNX semantics, a 2-D result
        axis = int(_st(stub, "axis")) % max(1, x.dim())
        return x.reshape(int(x.shape[:axis].numel()), -1) if axis else x.reshape(1, -1)
    return x.flatten(int(_st(stub, "start_dim", 1)), int(_st(stub, "end_dim", -1)))


def _softmax_nn(stub: ModuleStub, x: Any) -> Any:
    import torch

    return torch.softmax(x, dim=int(_st(stub, "dim")))


def _constant(stub: ModuleStub) -> Any:
    return _st(stub, "value")


def _shape(stub: ModuleStub, x: Any) -> Any:
    import torch

    return torch._shape_as_tensor(x)[_st(stub, "_start", 0) : _st(stub, "_end")]  # traced as Shape (dynamic)


def _gather(stub: ModuleStub, x: Any, indices: Any) -> Any:
    axis = int(_st(stub, "_axis", 0)) % x.dim()
    return x[(slice(None),) * axis + (indices.long(),)]


def _cast(stub: ModuleStub, x: Any) -> Any:
    import torch

    dtype = _st(stub, "torch_dtype")
    if not isinstance(dtype, torch.dtype):
        raise CheckpointError(f"{stub.qualname}: torch_dtype is not a dtype ({dtype!r})")
    return x.to(dtype)


def _unsqueeze_dynamic(stub: ModuleStub, x: Any, axes: Any) -> Any:
    for ax in sorted(int(a) for a in axes.tolist()):
        x = x.unsqueeze(ax)
    return x


def _matmul(stub: ModuleStub, a: Any, b: Any) -> Any:
    return a @ b


_NN = "torch.nn.modules."
_O2T = "onnx2torch.node_converters."
LAYERS: dict[str, Callable[..., Any]] = {
    _NN + "conv.Conv2d": _conv2d,
    _NN + "batchnorm.BatchNorm2d": _batch_norm,
    _NN + "batchnorm.BatchNorm1d": _batch_norm,
    _NN + "linear.Linear": _linear,
    _NN + "linear.Identity": _identity,
    _NN + "dropout.Dropout": _identity,
    _NN + "activation.Sigmoid": _torch("sigmoid"),
    _NN + "activation.Tanh": _torch("tanh"),
    _NN + "activation.ReLU": _torch("relu"),
    _NN + "activation.SiLU": lambda s, x: x * _torch("sigmoid")(s, x),
    _NN + "activation.Softmax": _softmax_nn,
    _NN + "flatten.Flatten": _flatten,
    _NN + "container.Sequential": _sequential,
    _NN + "pooling.MaxPool2d": _max_pool,
    _O2T + "binary_math_operations.OnnxBinaryMathOperation": _binary,
    _O2T + "transpose.OnnxTranspose": _transpose,
    _O2T + "reduce.OnnxReduceStaticAxes": _reduce,
    _O2T + "reduce.OnnxReduceSumStaticAxes": _reduce_sum,
    _O2T + "squeeze.OnnxSqueezeStaticAxes": _squeeze,
    _O2T + "squeeze.OnnxSqueezeDynamicAxes": _squeeze_dynamic,
    _O2T + "unsqueeze.OnnxUnsqueezeStaticAxes": _unsqueeze,
    _O2T + "unsqueeze.OnnxUnsqueezeDynamicAxes": _unsqueeze_dynamic,
    _O2T + "shape.OnnxShape": _shape,
    _O2T + "gather.OnnxGather": _gather,
    _O2T + "cast.OnnxCast": _cast,
    _O2T + "reshape.OnnxReshape": _reshape,
    _O2T + "matmul.OnnxMatMul": _matmul,
    _O2T + "gemm.OnnxGemm": _gemm,
    _O2T + "global_average_pool.OnnxGlobalAveragePool": _global_avg,
    _O2T + "global_average_pool.OnnxGlobalAveragePoolWithKnownInputShape": _global_avg,
    _O2T + "pad.OnnxPadStatic": _pad,
    _O2T + "activations.OnnxSoftmaxV1V11": _softmax_onnx,
    _O2T + "activations.OnnxHardSigmoid": _hard_sigmoid,
    _O2T + "activations.OnnxErf": _torch("erf"),
    _O2T + "functions.OnnxFunction": _function,
    _O2T + "clip.OnnxClip": _clip,
    _O2T + "concat.OnnxConcat": _concat,
    _O2T + "identity.OnnxCopyIdentity": _identity,
    _O2T + "flatten.OnnxFlatten": _flatten,
    _O2T + "constant.OnnxConstant": _constant,
}
#: container classes in the pickle that are never called
CONTAINERS = ("onnx2torch.converter.InitializersContainer", "torch.nn.modules.module.Module")


def run_layer(stub: Any, *args: Any, **kwargs: Any) -> Any:
    if not isinstance(stub, ModuleStub):
        raise CheckpointError(f"expected a layer, found {type(stub).__name__}")
    impl = LAYERS.get(stub.qualname)
    if impl is None:
        raise CheckpointError(f"layer class {stub.qualname} has no sleuth implementation")
    return impl(stub, *args, **kwargs)
