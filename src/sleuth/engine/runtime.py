"""ONNX Runtime sessions with thread settings that use the cores without oversubscription."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def default_providers(requested: str | Sequence[str] | None = None) -> list[str]:
    """CUDA first when present, CPU always last. ``requested`` overrides (comma string or list)."""
    if requested:
        names = [p.strip() for p in requested.split(",")] if isinstance(requested, str) else list(requested)
        return [p for p in names if p]
    have = set(available_providers())
    out = [p for p in ("CUDAExecutionProvider",) if p in have]
    out.append("CPUExecutionProvider")
    return out


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def session_options(intra_op_threads: int = 0) -> ort.SessionOptions:
    """One intra-op pool sized to the cores, no inter-op parallelism, no spinning.

    Each model runs behind a single micro-batcher thread, so one session at a time uses
    the intra-op pool; spinning threads would steal the cores from decode threads.
    """
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = intra_op_threads or cpu_count()
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def create_session(
    path: str | Path,
    providers: str | Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """``intra_op_threads=None``: the ``intra_op_threads`` setting (``SLEUTH_INTRA_OP_THREADS``; 0 = all cores)."""
    if intra_op_threads is None:
        from sleuth.settings import get_settings

        intra_op_threads = get_settings().intra_op_threads
    return ort.InferenceSession(
        str(path),
        sess_options=session_options(intra_op_threads),
        providers=default_providers(providers),
    )
