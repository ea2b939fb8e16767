"""Helpers for the engine tests: a tiny real ONNX model, its converter, its Model class.

The "weights" artefact is 15 little-endian float32 values: a 4x3 matrix W then a bias b.
The converter turns them into an ONNX graph ``y = x @ W + b`` built with ``onnx.helper``;
``LinearModel`` serves it through ONNX Runtime. Test hooks on the model (``gate``,
``batches``, a ``"boom"`` tag) let tests hold the inference thread and see the batches;
the numbers themselves always come from ORT.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sleuth.engine.base import Model
from sleuth.settings import Settings

N_IN, N_OUT = 4, 3

MOD = __name__  # the dotted name pytest gave this module; catalog entries point here
CONVERT = f"{MOD}:convert"
BROKEN_CONVERT = f"{MOD}:broken_convert"
LOADER = f"{MOD}:LinearModel"


def import_root() -> Path:
    """The folder to put on PYTHONPATH so that ``MOD`` imports in a subprocess."""
    return Path(__file__).resolve().parents[len(MOD.split(".")) - 1]


def make_weights(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    return rng.standard_normal(N_IN * N_OUT + N_OUT).astype("<f4").tobytes()


def split_weights(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    arr = np.frombuffer(raw, dtype="<f4")
    if arr.size != N_IN * N_OUT + N_OUT:
        raise ValueError(f"expected {N_IN * N_OUT + N_OUT} float32 values, got {arr.size}")
    return arr[: N_IN * N_OUT].reshape(N_IN, N_OUT).copy(), arr[N_IN * N_OUT :].copy()


def build_linear_onnx(path: Path, w: np.ndarray, b: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_IN])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", N_OUT])
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "linear",
        [x],
        [y],
        initializer=[
            numpy_helper.from_array(w.astype(np.float32), "W"),
            numpy_helper.from_array(b.astype(np.float32), "b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="sleuth-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Converter under test: weights -> ONNX. Counts its runs in $SLEUTH_TEST_CONVERT_COUNTER."""
    counter = os.environ.get("SLEUTH_TEST_CONVERT_COUNTER")
    if counter:
        with open(counter, "a", encoding="utf-8") as f:
            f.write(f"{os.getpid()}\n")
    delay = float(os.environ.get("SLEUTH_TEST_CONVERT_DELAY", "0") or 0)
    if delay:
        time.sleep(delay)
    w, b = split_weights(Path(artefacts["weights"]).read_bytes())
    return {"onnx": build_linear_onnx(out_dir / "model.onnx", w, b)}


def broken_convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    (out_dir / "half.onnx").write_bytes(b"partial")
    raise RuntimeError("converter exploded on purpose")


class LinearModel(Model[Any, tuple[str, np.ndarray], np.ndarray, dict[str, Any]]):
    """A served model: item = {"tag": str, "x": 4 numbers} (or just 4 numbers)."""

    name = ""
    max_batch_size = 64

    def __init__(self) -> None:
        self.session: Any = None
        self.gate: threading.Event | None = None  # predict_batch waits on it when set
        self.batches: list[list[str]] = []  # tags of each batch, in run order
        self.load_calls = 0
        self.w: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        from sleuth.engine.runtime import create_session

        self.load_calls += 1
        self.session = create_session(artefacts["onnx"], providers or ["CPUExecutionProvider"], 1)
        self.w, self.b = split_weights(Path(artefacts["weights"]).read_bytes())

    def preprocess(self, item: Any) -> tuple[str, np.ndarray]:
        tag, x = (str(item.get("tag", "")), item.get("x")) if isinstance(item, Mapping) else ("", item)
        try:
            arr = np.asarray(x, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise ValueError(f"input must be {N_IN} numbers: {e}") from e
        if arr.shape != (N_IN,) or not np.isfinite(arr).all():
            raise ValueError(f"input must be {N_IN} finite numbers, got shape {arr.shape}")
        return tag, arr

    def predict_batch(self, inputs: Sequence[tuple[str, np.ndarray]]) -> list[np.ndarray]:
        tags = [t for t, _ in inputs]
        self.batches.append(tags)
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        if "boom" in tags:
            raise RuntimeError("predict_batch failed on purpose")
        x = np.stack([a for _, a in inputs])
        (y,) = self.session.run(["y"], {"x": x})
        return list(y)

    def postprocess(self, raw: np.ndarray, prepared: tuple[str, np.ndarray]) -> dict[str, Any]:
        return {"tag": prepared[0], "y": [float(v) for v in raw]}


def expected(weights: bytes, x: Sequence[float]) -> np.ndarray:
    w, b = split_weights(weights)
    return np.asarray(x, dtype=np.float32) @ w + b


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def toml_entry(
    name: str,
    artefacts: Sequence[Mapping[str, Any]],
    *,
    version: str = "1.0",
    default: bool = False,
    convert: str | None = None,
    loader: str = "",
    extra: Mapping[str, int] | None = None,
) -> str:
    """One [[model]] block in TOML text."""
    lines = [
        "[[model]]",
        f'name = "{name}"',
        f'version = "{version}"',
        'task = "test"',
        'licence = "MIT"',
        f'description = "test model {name}"',
        f"default = {'true' if default else 'false'}",
        f'loader = "{loader or LOADER}"',
    ]
    if convert:
        lines.append(f'convert = "{convert}"')
    lines.extend(f"{k} = {v}" for k, v in (extra or {}).items())
    for a in artefacts:
        lines.append("[[model.artefact]]")
        for k, v in a.items():
            if isinstance(v, Mapping):
                inner = ", ".join(f'{ik} = "{iv}"' for ik, iv in v.items())
                lines.append(f"{k} = {{ {inner} }}")
            elif isinstance(v, int):
                lines.append(f"{k} = {v}")
            else:
                lines.append(f'{k} = "{v}"')
    return "\n".join(lines) + "\n"


def build_wheel(dest_dir: Path, dist: str, version: str, members: Mapping[str, bytes]) -> Path:
    """A minimal valid pure-Python wheel holding ``members``."""
    dist_info = f"{dist}-{version}.dist-info"
    files = dict(members)
    files.setdefault(f"{dist}/__init__.py", b"")
    files[f"{dist_info}/METADATA"] = f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n".encode()
    files[f"{dist_info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: sleuth-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [f"{n},sha256={hashlib.sha256(d).hexdigest()},{len(d)}" for n, d in files.items()]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    path = dest_dir / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    return path


@dataclass
class EngineEnv:
    root: Path
    catalog_dir: Path
    mirror: Path
    cache: Path
    settings: Settings

    def write_catalog(self, text: str, filename: str = "test.toml") -> Path:
        p = self.catalog_dir / filename
        p.write_text(text, encoding="utf-8")
        return p

    def put_mirror(self, rel: str, data: bytes) -> Path:
        p = self.mirror / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p
