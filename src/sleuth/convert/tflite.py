"""Convert a uint8-quantised TFLite image classifier (MobileNetV2 family) to ONNX.

Build-time converter for the Coral models (``coral-imagenet``, ``coral-inat-birds``).
The flatbuffer is parsed with the PyPI ``tflite`` package (generated schema accessors,
imported lazily) and every TFLite operator is written as an ONNX QDQ island::

    uint8 --DequantizeLinear--> float --Conv/Add/AveragePool/Softmax--> float --QuantizeLinear--> uint8

with the TFLite tensors' own scales and zero points on every edge, uint8 weights and int32
biases kept as quantised initialisers. ONNX Runtime's QDQ transformers fuse these islands
into integer kernels (QLinearConv, QLinearAdd, ...), so the served graph computes in
uint8 like the TFLite runtime; rounding inside the kernels can differ by a few LSB.

Layout: the ONNX model keeps TFLite's NHWC uint8 input (``[batch, H, W, C]``, batch
dynamic) and transposes once to NCHW; 4-D tensors are NCHW inside the graph, and RESHAPE
transposes back to NHWC first so its semantics are TFLite's.

Supported builtin operators: CONV_2D, DEPTHWISE_CONV_2D, ADD, AVERAGE_POOL_2D,
MAX_POOL_2D, FULLY_CONNECTED, RESHAPE, SQUEEZE, SOFTMAX and uint8 QUANTIZE
(requantisation), with fused activations NONE, RELU, RELU6, RELU_N1_TO_1.
Anything else raises ``ValueError`` naming the operator.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# TFLite TensorType codes (schema.fbs) that we handle.
_TT_FLOAT32 = 0
_TT_INT32 = 2
_TT_UINT8 = 3
_TT_INT64 = 4
_TT_INT8 = 9
_NP_OF_TT = {
    _TT_FLOAT32: np.float32,
    _TT_INT32: np.int32,
    _TT_UINT8: np.uint8,
    _TT_INT64: np.int64,
    _TT_INT8: np.int8,
}

# Fused activation codes (schema.fbs ActivationFunctionType) -> real-valued clamp range.
_ACTIVATIONS: dict[int, tuple[float, float]] = {
    0: (-np.inf, np.inf),  # NONE
    1: (0.0, np.inf),  # RELU
    2: (-1.0, 1.0),  # RELU_N1_TO_1
    3: (0.0, 6.0),  # RELU6
}

OPSET = 13


@dataclass
class _QTensor:
    """What the converter knows about one TFLite tensor."""

    name: str
    shape: list[int]
    dtype: int
    scale: float | None
    zero_point: int | None
    data: np.ndarray | None  # constant buffer contents (weights, biases, shapes)


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def uniq(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, arr: np.ndarray) -> str:
        from onnx import numpy_helper

        name = self.uniq(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], base: str, n_out: int = 1, **attrs: Any) -> list[str]:
        from onnx import helper

        outs = [self.uniq(f"{base}_{op}") for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.uniq(op), **attrs))
        return outs

    def dq(self, x: str, scale: float, zp: int, zp_dtype: type = np.uint8, base: str = "dq") -> str:
        s = self.const(f"{base}_scale", np.array(scale, np.float32))
        z = self.const(f"{base}_zp", np.array(zp, zp_dtype))
        return self.node("DequantizeLinear", [x, s, z], base)[0]

    def q(self, x: str, scale: float, zp: int, base: str = "q") -> str:
        s = self.const(f"{base}_scale", np.array(scale, np.float32))
        z = self.const(f"{base}_zp", np.array(zp, np.uint8))
        return self.node("QuantizeLinear", [x, s, z], base)[0]


def _read_tensors(model: Any, graph: Any) -> list[_QTensor]:
    out: list[_QTensor] = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        q = t.Quantization()
        scale = zp = None
        if q is not None and q.ScaleLength() > 0:
            if q.ScaleLength() != 1:
                raise ValueError(f"tensor {t.Name()!r}: per-channel quantisation is not supported")
            scale = float(q.Scale(0))
            zp = int(q.ZeroPoint(0))
        data = None
        buf = model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            if t.Type() not in _NP_OF_TT:
                raise ValueError(f"tensor {t.Name()!r}: unsupported constant type code {t.Type()}")
            raw = buf.DataAsNumpy().tobytes()
            data = np.frombuffer(raw, dtype=_NP_OF_TT[t.Type()]).reshape([int(d) for d in t.ShapeAsNumpy()])
        shape = [int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else []
        out.append(_QTensor(t.Name().decode("utf-8", "replace"), shape, int(t.Type()), scale, zp, data))
    return out


def _same_pads(
    in_hw: tuple[int, int], k_hw: tuple[int, int], s_hw: tuple[int, int], d_hw: tuple[int, int]
) -> list[int]:
    """TFLite/TensorFlow SAME padding as explicit ONNX pads [top, left, bottom, right]."""
    begin: list[int] = []
    end: list[int] = []
    for size, k, s, d in zip(in_hw, k_hw, s_hw, d_hw, strict=True):
        eff = (k - 1) * d + 1
        out = -(-size // s)
        total = max((out - 1) * s + eff - size, 0)
        begin.append(total // 2)
        end.append(total - total // 2)
    return begin + end


def _clip_for_activation(b: _Builder, x: str, act: int, out_scale: float, out_zp: int) -> str:
    """Apply a fused activation in the float domain unless the output quantisation already clamps it."""
    if act not in _ACTIVATIONS:
        raise ValueError(f"unsupported fused activation code {act}")
    lo, hi = _ACTIVATIONS[act]
    q_lo = (0 - out_zp) * out_scale  # smallest representable real value
    q_hi = (255 - out_zp) * out_scale
    if lo <= q_lo + 1e-9 and hi >= q_hi - 1e-9:
        return x  # saturation of QuantizeLinear does the clamp exactly
    lo_c = b.const("clip_lo", np.array(max(lo, -3.4e38), np.float32))
    hi_c = b.const("clip_hi", np.array(min(hi, 3.4e38), np.float32))
    return b.node("Clip", [x, lo_c, hi_c], "act")[0]


def convert_tflite(tflite_path: Path, onnx_path: Path) -> Path:
    """Convert one quantised TFLite classifier file to an ONNX file; returns ``onnx_path``."""
    import onnx
    import tflite
    from onnx import TensorProto, helper

    buf = Path(tflite_path).read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ValueError(f"{tflite_path}: not a TFLite flatbuffer (no 'TFL3' file identifier)")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
    except Exception as exc:  # noqa: BLE001 - the flatbuffer library raises assorted errors
        raise ValueError(f"{tflite_path}: not a TFLite flatbuffer ({exc})") from exc
    if model.SubgraphsLength() != 1:
        raise ValueError(f"{tflite_path}: expected one subgraph, found {model.SubgraphsLength()}")
    graph = model.Subgraphs(0)
    tensors = _read_tensors(model, graph)
    op_names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}

    if graph.InputsLength() != 1 or graph.OutputsLength() != 1:
        raise ValueError("expected a single-input single-output classifier")
    t_in = tensors[int(graph.Inputs(0))]
    t_out = tensors[int(graph.Outputs(0))]
    if t_in.dtype != _TT_UINT8 or len(t_in.shape) != 4:
        raise ValueError(f"expected a uint8 NHWC input, got type {t_in.dtype} shape {t_in.shape}")
    if t_out.dtype != _TT_UINT8 or t_out.scale is None or t_out.zero_point is None:
        raise ValueError("expected a quantised uint8 output")

    b = _Builder()
    # ONNX name of each activation tensor: 4-D tensors are NCHW, others as in TFLite.
    onnx_name: dict[int, str] = {}
    onnx_name[int(graph.Inputs(0))] = b.node("Transpose", ["input"], "in", perm=[0, 3, 1, 2])[0]

    def qin(idx: int) -> tuple[str, _QTensor]:
        t = tensors[idx]
        if idx not in onnx_name:
            raise ValueError(f"tensor {t.name!r} is used before it is produced")
        if t.scale is None or t.zero_point is None:
            raise ValueError(f"tensor {t.name!r} is not quantised")
        return b.dq(onnx_name[idx], t.scale, t.zero_point), t

    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        oc = model.OperatorCodes(op.OpcodeIndex())
        code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
        opname = op_names.get(code, f"code {code}")
        ins = [int(j) for j in op.InputsAsNumpy()]
        outs = [int(j) for j in op.OutputsAsNumpy()]
        t_o = tensors[outs[0]]
        opts_tab = op.BuiltinOptions()

        if opname in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            if opname == "CONV_2D":
                opts: Any = tflite.Conv2DOptions()
            else:
                opts = tflite.DepthwiseConv2DOptions()
            opts.Init(opts_tab.Bytes, opts_tab.Pos)
            x, t_x = qin(ins[0])
            t_w = tensors[ins[1]]
            if t_w.data is None or t_w.scale is None or t_w.zero_point is None or t_w.dtype != _TT_UINT8:
                raise ValueError(f"{opname}: weights must be a constant uint8 tensor")
            w = t_w.data
            cin = t_x.shape[3]
            if opname == "CONV_2D":
                w_oihw = w.transpose(0, 3, 1, 2)  # OHWI -> OIHW
                group = 1
            else:
                w_oihw = w.transpose(3, 0, 1, 2)  # 1HW(C*m) -> (C*m)1HW
                group = cin
            w_f = b.dq(b.const("w", w_oihw), t_w.scale, t_w.zero_point, base="w_dq")
            conv_in = [x, w_f]
            if len(ins) > 2 and ins[2] >= 0:
                t_b = tensors[ins[2]]
                if t_b.data is None or t_b.dtype != _TT_INT32:
                    raise ValueError(f"{opname}: bias must be a constant int32 tensor")
                b_scale = t_b.scale if t_b.scale is not None else t_x.scale * t_w.scale  # type: ignore[operator]
                conv_in.append(b.dq(b.const("b", t_b.data), float(b_scale), 0, np.int32, base="b_dq"))
            kh, kw = int(w_oihw.shape[2]), int(w_oihw.shape[3])
            strides = [int(opts.StrideH()), int(opts.StrideW())]
            dil = [int(opts.DilationHFactor() or 1), int(opts.DilationWFactor() or 1)]
            if opts.Padding() == tflite.Padding.SAME:
                pads = _same_pads((t_x.shape[1], t_x.shape[2]), (kh, kw), (strides[0], strides[1]), (dil[0], dil[1]))
            else:
                pads = [0, 0, 0, 0]
            y = b.node(
                "Conv",
                conv_in,
                "conv",
                kernel_shape=[kh, kw],
                strides=strides,
                dilations=dil,
                pads=pads,
                group=group,
            )[0]
            act = int(opts.FusedActivationFunction())
            assert t_o.scale is not None and t_o.zero_point is not None
            y = _clip_for_activation(b, y, act, t_o.scale, t_o.zero_point)
            onnx_name[outs[0]] = b.q(y, t_o.scale, t_o.zero_point)

        elif opname == "FULLY_CONNECTED":
            opts = tflite.FullyConnectedOptions()
            opts.Init(opts_tab.Bytes, opts_tab.Pos)
            if int(opts.WeightsFormat()) != 0 or bool(opts.KeepNumDims()):
                raise ValueError("FULLY_CONNECTED: only default weights format without keep_num_dims is supported")
            t_x = tensors[ins[0]]
            t_w = tensors[ins[1]]
            if t_w.data is None or t_w.scale is None or t_w.zero_point is None or t_w.dtype != _TT_UINT8:
                raise ValueError("FULLY_CONNECTED: weights must be a constant uint8 tensor")
            if t_x.scale is None or t_x.zero_point is None:
                raise ValueError("FULLY_CONNECTED: input is not quantised")
            x_u8 = onnx_name[ins[0]]
            if len(t_x.shape) == 4:
                x_u8 = b.node("Transpose", [x_u8], "nhwc", perm=[0, 2, 3, 1])[0]
            flat = b.const("fc_shape", np.array([-1, t_w.data.shape[1]], np.int64))
            x_u8 = b.node("Reshape", [x_u8, flat], "flatten")[0]
            x = b.dq(x_u8, t_x.scale, t_x.zero_point)
            gemm_in = [x, b.dq(b.const("w", t_w.data), t_w.scale, t_w.zero_point, base="w_dq")]
            if len(ins) > 2 and ins[2] >= 0:
                t_b = tensors[ins[2]]
                if t_b.data is None or t_b.dtype != _TT_INT32:
                    raise ValueError("FULLY_CONNECTED: bias must be a constant int32 tensor")
                b_scale = t_b.scale if t_b.scale is not None else t_x.scale * t_w.scale
                gemm_in.append(b.dq(b.const("b", t_b.data), float(b_scale), 0, np.int32, base="b_dq"))
            y = b.node("Gemm", gemm_in, "fc", transB=1)[0]
            assert t_o.scale is not None and t_o.zero_point is not None
            y = _clip_for_activation(b, y, int(opts.FusedActivationFunction()), t_o.scale, t_o.zero_point)
            onnx_name[outs[0]] = b.q(y, t_o.scale, t_o.zero_point)

        elif opname == "ADD":
            opts = tflite.AddOptions()
            opts.Init(opts_tab.Bytes, opts_tab.Pos)
            a, _ = qin(ins[0])
            c, _ = qin(ins[1])
            y = b.node("Add", [a, c], "add")[0]
            assert t_o.scale is not None and t_o.zero_point is not None
            y = _clip_for_activation(b, y, int(opts.FusedActivationFunction()), t_o.scale, t_o.zero_point)
            onnx_name[outs[0]] = b.q(y, t_o.scale, t_o.zero_point)

        elif opname in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
            opts = tflite.Pool2DOptions()
            opts.Init(opts_tab.Bytes, opts_tab.Pos)
            x, t_x = qin(ins[0])
            k = [int(opts.FilterHeight()), int(opts.FilterWidth())]
            strides = [int(opts.StrideH()), int(opts.StrideW())]
            if opts.Padding() == tflite.Padding.SAME:
                pads = _same_pads((t_x.shape[1], t_x.shape[2]), (k[0], k[1]), (strides[0], strides[1]), (1, 1))
            else:
                pads = [0, 0, 0, 0]
            if opname == "AVERAGE_POOL_2D" and k == t_x.shape[1:3] and pads == [0, 0, 0, 0]:
                # the pool covers the whole map: a global average (which ORT fuses cleanly)
                y = b.node("GlobalAveragePool", [x], "gap")[0]
            else:
                onnx_op = "AveragePool" if opname == "AVERAGE_POOL_2D" else "MaxPool"
                extra = {"count_include_pad": 0} if onnx_op == "AveragePool" else {}
                y = b.node(onnx_op, [x], "pool", kernel_shape=k, strides=strides, pads=pads, **extra)[0]
            assert t_o.scale is not None and t_o.zero_point is not None
            y = _clip_for_activation(b, y, int(opts.FusedActivationFunction()), t_o.scale, t_o.zero_point)
            onnx_name[outs[0]] = b.q(y, t_o.scale, t_o.zero_point)

        elif opname in ("RESHAPE", "SQUEEZE"):
            t_x = tensors[ins[0]]
            x = onnx_name[ins[0]]
            if len(t_x.shape) == 4:
                x = b.node("Transpose", [x], "nhwc", perm=[0, 2, 3, 1])[0]
            new_shape = list(t_o.shape)
            if not new_shape or new_shape[0] != t_x.shape[0]:
                raise ValueError(f"{opname}: reshapes across the batch dimension are not supported")
            new_shape[0] = -1  # keep the batch dynamic
            y = b.node("Reshape", [x, b.const("shape", np.array(new_shape, np.int64))], "reshape")[0]
            if len(new_shape) == 4:
                y = b.node("Transpose", [y], "nchw", perm=[0, 3, 1, 2])[0]
            if (t_x.scale, t_x.zero_point) != (t_o.scale, t_o.zero_point):
                assert t_x.scale is not None and t_x.zero_point is not None
                assert t_o.scale is not None and t_o.zero_point is not None
                y = b.q(b.dq(y, t_x.scale, t_x.zero_point), t_o.scale, t_o.zero_point)
            onnx_name[outs[0]] = y

        elif opname == "SOFTMAX":
            opts = tflite.SoftmaxOptions()
            opts.Init(opts_tab.Bytes, opts_tab.Pos)
            x, t_x = qin(ins[0])
            if len(t_x.shape) != 2:
                raise ValueError("SOFTMAX: only 2-D inputs are supported")
            beta = float(opts.Beta())
            if beta != 1.0:
                x = b.node("Mul", [x, b.const("beta", np.array(beta, np.float32))], "beta")[0]
            y = b.node("Softmax", [x], "softmax", axis=-1)[0]
            assert t_o.scale is not None and t_o.zero_point is not None
            onnx_name[outs[0]] = b.q(y, t_o.scale, t_o.zero_point)

        elif opname == "DEQUANTIZE":
            raise ValueError("DEQUANTIZE inside the graph (float sections) is not supported")

        elif opname == "QUANTIZE":
            # uint8 -> uint8 requantisation
            x, _ = qin(ins[0])
            assert t_o.scale is not None and t_o.zero_point is not None
            onnx_name[outs[0]] = b.q(x, t_o.scale, t_o.zero_point)

        else:
            raise ValueError(f"unsupported TFLite operator {opname} (operator #{i})")

    out_idx = int(graph.Outputs(0))
    if out_idx not in onnx_name:
        raise ValueError("the graph output is never produced")
    b.nodes.append(helper.make_node("Identity", [onnx_name[out_idx]], ["probs"], name="output"))

    n_classes = t_out.shape[-1]
    in_info = helper.make_tensor_value_info("input", TensorProto.UINT8, ["batch", *t_in.shape[1:]])
    out_info = helper.make_tensor_value_info("probs", TensorProto.UINT8, ["batch", n_classes])
    g = helper.make_graph(b.nodes, "tflite_qdq", [in_info], [out_info], initializer=b.inits)
    m = helper.make_model(
        g,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="sleuth.convert.tflite",
        producer_version="1",
    )
    m.ir_version = 8
    meta = {
        "input_scale": repr(t_in.scale),
        "input_zero_point": str(t_in.zero_point),
        "output_scale": repr(t_out.scale),
        "output_zero_point": str(t_out.zero_point),
        "source_sha256": hashlib.sha256(buf).hexdigest(),
    }
    for key, value in meta.items():
        m.metadata_props.append(onnx.StringStringEntryProto(key=key, value=value))
    onnx.checker.check_model(m)
    onnx_path = Path(onnx_path)
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    onnx_path.write_bytes(m.SerializeToString())
    return onnx_path


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter: ``artefacts["weights"]`` (the .tflite) -> ``{"onnx": out_dir/"model.onnx"}``."""
    if "weights" not in artefacts:
        raise ValueError("the TFLite converter needs an artefact named 'weights'")
    return {"onnx": convert_tflite(Path(artefacts["weights"]), Path(out_dir) / "model.onnx")}
