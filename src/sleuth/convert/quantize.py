"""Build-time INT8 quantization of an ONNX model from a stored activation-range table.

Static quantization needs the range of every activation tensor, measured by running the FP32
model on representative inputs (calibration). Users have no camera-trap images at
``sleuth models pull`` time, so the ranges are measured once, by ``scripts/calibrate_mdlite.py``
on the shared camera-trap set, and shipped as a small JSON table in ``sleuth/data/calibration/``
(the role of a TensorRT calibration cache). The converter then quantizes deterministically from
that table with ONNX Runtime's QDQ quantizer: weights INT8 per output channel, activations UINT8
per tensor (min/max), which ONNX Runtime's CPU provider runs as integer kernels (VNNI where the
CPU has it).

Table format (``format`` 1)::

    {"format": 1, "method": "minmax", "model": ..., "source_sha256": ..., "images": [...],
     "onnxruntime": "1.xx", "ranges": {"<tensor name>": [low, high], ...}}

A table that does not cover the export (tensor names changed, e.g. after a torch upgrade) is
refused with a clear error instead of silently leaving tensors unquantized.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["calibrate_ranges", "load_table", "quantize_int8", "quantizable_tensors"]

#: Operator types quantized (activations and weights); everything else stays FP32.
QUANT_OPS = ("Conv", "Mul", "Sigmoid", "Add", "Concat", "MaxPool", "Resize")


def load_table(path: str | Path) -> dict[str, Any]:
    table = json.loads(Path(path).read_text())
    if table.get("format") != 1 or not isinstance(table.get("ranges"), dict):
        raise ValueError(f"{path}: not a sleuth calibration table (format 1)")
    return table


def quantizable_tensors(model_path: str | Path, nodes_to_exclude: Sequence[str] = ()) -> set[str]:
    """Activation tensors the quantizer needs a range for: inputs and outputs of the quantized nodes."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    consts = {i.name for i in model.graph.initializer}
    consts |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    skip = set(nodes_to_exclude)
    out: set[str] = set()
    for n in model.graph.node:
        if n.op_type in QUANT_OPS and n.name not in skip:
            out.update(t for t in (*n.input, *n.output) if t and t not in consts)
    return out


def calibrate_ranges(
    model_path: str | Path, batches: Iterable[Mapping[str, np.ndarray]], nodes_to_exclude: Sequence[str] = ()
) -> dict[str, tuple[float, float]]:
    """Min/max of every tensor in :func:`quantizable_tensors` over ``batches`` (FP32 ORT runs)."""
    import onnx
    import onnxruntime as ort

    want = quantizable_tensors(model_path, nodes_to_exclude)
    model = onnx.load(str(model_path))
    known = {o.name for o in model.graph.output}
    for name in sorted(want - known):  # expose intermediates as graph outputs
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory(prefix="sleuth-calib-") as tmp:
        aug = Path(tmp) / "augmented.onnx"
        onnx.save(model, str(aug))
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every tensor
        sess = ort.InferenceSession(str(aug), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        lo: dict[str, float] = {}
        hi: dict[str, float] = {}
        for feed in batches:
            outs = zip(names, sess.run(None, dict(feed)), strict=True)
            for name, arr in [*feed.items(), *outs]:  # graph inputs, then every exposed tensor
                if name in want:
                    lo[name] = min(lo.get(name, np.inf), float(np.min(arr)))
                    hi[name] = max(hi.get(name, -np.inf), float(np.max(arr)))
    missing = want - lo.keys()
    if missing:
        raise ValueError(f"calibration saw no values for {len(missing)} tensors, e.g. {sorted(missing)[:3]}")
    return {k: (lo[k], hi[k]) for k in sorted(want)}


def quantize_int8(
    src: str | Path,
    dst: str | Path,
    ranges: Mapping[str, Sequence[float]],
    nodes_to_exclude: Sequence[str] = (),
) -> Path:
    """QDQ-quantize ``src`` into ``dst`` with the given activation ranges (all of them required)."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    need = quantizable_tensors(src, nodes_to_exclude)
    missing = need - ranges.keys()
    if missing:
        raise ValueError(
            f"the calibration table does not cover this export: {len(missing)} tensors missing "
            f"(e.g. {sorted(missing)[:3]}); regenerate it with scripts/calibrate_mdlite.py"
        )
    data = {
        k: TensorData(lowest=np.array(v[0], dtype=np.float32), highest=np.array(v[1], dtype=np.float32))
        for k, v in ranges.items()
        if k in need
    }
    model = onnx.shape_inference.infer_shapes(onnx.load(str(src)))  # the quantizer reads value types
    quantizer = QDQQuantizer(
        model=model,
        per_channel=True,
        reduce_range=False,  # not needed with VNNI / AVX-512
        weight_qType=QuantType.QInt8,
        activation_qType=QuantType.QUInt8,
        tensors_range=TensorsData(CalibrationMethod.MinMax, data),
        nodes_to_quantize=[],  # all
        nodes_to_exclude=list(nodes_to_exclude),
        op_types_to_quantize=list(QUANT_OPS),
        extra_options={},
    )
    quantizer.quantize_model()
    out = Path(dst)
    quantizer.model.save_model_to_file(str(out), False)
    return out
