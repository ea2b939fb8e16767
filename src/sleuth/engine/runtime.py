"""ONNX Runtime sessions with thread settings that use the cores without oversubscription."""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from sleuth.engine.compute import GatedSession
from sleuth.engine.threads import at_normal_priority


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


def int8_fast_path() -> bool:
    """Whether ONNX Runtime's INT8 kernels are both fast and exact on this CPU.

    x86 CPUs without VNNI multiply uint8 x int8 with VPMADDUBSW, whose 16-bit pair sums saturate
    with full-range 8-bit weights (the accuracy measured in docs/performance.md would not hold);
    with AVX512-VNNI or AVX-VNNI they do not. ARM's integer dot products do not saturate either.
    """
    if platform.machine().lower() in ("aarch64", "arm64"):
        return True
    flags = cpu_flags()
    return "avx512_vnni" in flags or "avx_vnni" in flags


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The x86 feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none).

    Read once per process: ``resolve_precision("auto")`` runs for every API request.
    """
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    return frozenset(next((line.split(":", 1)[1].split() for line in lines), []))


def resolve_precision(value: str) -> str:
    """``auto`` -> ``int8`` where :func:`int8_fast_path`, else ``fp32``; ``int8``/``fp32`` as given."""
    if value not in ("auto", "int8", "fp32"):
        raise ValueError(f"precision must be auto, int8 or fp32, not {value!r}")
    if value == "auto":
        return "int8" if int8_fast_path() else "fp32"
    return value


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def use_cpu_arena(requested: bool = True, policy: str | None = None) -> bool:
    """The one memory policy of every session: ONNX Runtime's CPU arena, or plain allocations.

    The arena grows to a session's peak activations (per input shape, and per concurrent run) and never gives
    them back. That is cheap for the wildlife detectors and the classifier (fixed input shapes, one run at a
    time behind their micro-batcher), but the deepfake models' activations are large and per item: AASIST kept
    0.67 GB in its arena after one WAV, the face models 1.2 GB after one picture, four concurrent audio
    analyses 1.9 GB (docs/performance.md, memory). Their loaders ask for ``requested=False``: activations are
    then freed after each run (large blocks straight back to the OS), at some speed (audio ~30 % slower).

    ``policy`` (default: the ``ort_cpu_arena`` setting): ``auto`` = what the loader requested, ``on``/``off`` for all.
    """
    if policy is None:
        from sleuth.settings import get_settings

        policy = get_settings().ort_cpu_arena
    if policy == "on":
        return True
    if policy == "off":
        return False
    return requested


def session_options(intra_op_threads: int = 0, cpu_arena: bool = True) -> ort.SessionOptions:
    """One intra-op pool sized to the cores, no inter-op parallelism, no spinning; the CPU arena or not.

    Runs go through the compute gate (``sleuth.engine.compute``), so one session at a time uses
    the intra-op pool; spinning threads would steal the cores from decode threads. The memory
    pattern (planned buffer reuse inside one run) stays on either way.
    """
    so = ort.SessionOptions()
    so.enable_cpu_mem_arena = bool(cpu_arena)
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
    *,
    cpu_arena: bool = True,
) -> GatedSession:
    """An ONNX Runtime session whose ``run`` goes through the process's compute gate.

    ``intra_op_threads=None``: the ``intra_op_threads`` setting (``SLEUTH_INTRA_OP_THREADS``; 0 = all cores).
    ``cpu_arena``: what the model asks for, decided by :func:`use_cpu_arena`.
    """
    if intra_op_threads is None:
        from sleuth.settings import get_settings

        intra_op_threads = get_settings().intra_op_threads
    session = at_normal_priority(  # its intra-op threads are shared by sync requests: never niced
        ort.InferenceSession,
        str(path),
        sess_options=session_options(intra_op_threads, use_cpu_arena(cpu_arena)),
        providers=default_providers(providers),
    )
    return GatedSession(session)
