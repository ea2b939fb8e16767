"""Build-time: trace a PyTorch module to ONNX (the one export path our converters share).

Traced export (``dynamo=False``), constant folding, ``torch.manual_seed(0)`` first, tracer and
exporter notes silenced, written to a temporary name and moved into place, optional ONNX
metadata. torch and onnx are imported lazily: serving never imports this module.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["trace_to_onnx"]


def trace_to_onnx(
    model: Any,
    dummy: Any,
    out_path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: Mapping[str, Mapping[int, str]],
    opset: int,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    import torch

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    torch.manual_seed(0)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about Python ints from shapes, exporter deprecation notes
        torch.onnx.export(
            model,
            (dummy,),
            str(tmp),
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={k: dict(v) for k, v in dynamic_axes.items()},
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    if metadata:
        import onnx

        m = onnx.load(str(tmp))
        onnx.helper.set_model_props(m, dict(metadata))
        onnx.save(m, str(tmp))
    tmp.replace(out_path)
    return out_path
