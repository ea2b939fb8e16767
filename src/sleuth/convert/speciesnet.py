"""Build-time: a SpeciesNet release (Kaggle archive or folder) -> a served folder with an ONNX classifier.

A PyTorch release of SpeciesNet v4.0.x (``kaggle:google/speciesnet/pyTorch/v4.0.<n><a|b>``) is a folder::

    info.json                                   version, type, and the file names below
    always_crop_99710272_22x8_v12_epoch_00148.pt    the classifier: torch.save of an onnx2torch GraphModule
    always_crop_..._epoch_00148.labels[.<date>].txt  one 7-field label per classifier output
    taxonomy_release[.<date>].txt                the labels' taxonomy (roll-ups)
    geofence_release[.<date>].json               allow/block rules per taxon, country, US state

(``full_image_..._.pt`` for the "b" whole-image variants.) The ``.pt`` is read by the restricted
unpickler (:mod:`sleuth.convert.unpickle`): only the torch.nn / onnx2torch layer classes sleuth implements
(:data:`sleuth.convert.fx_program.LAYERS`) and tensor rebuilds are accepted, the GraphModule's saved code is
parsed, never run (:mod:`sleuth.convert.fx_program`), and any other class is refused by name. The network
is exported to ONNX (NHWC float input in [0, 1], ``[batch, 480, 480, 3]``, logits out) and written next to
copies of the release's labels, taxonomy and geofence, with an ``info.json`` naming them
(:class:`sleuth.models.speciesnet.SpeciesNetFolder` serves that folder with ONNX Runtime only).
torch is imported lazily (the ``convert`` extra).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sleuth.convert.fx_program import CONTAINERS, FN_MARKERS, LAYERS, FnMarker, FxProgram, PickledGraph
from sleuth.convert.unpickle import CheckpointError, load_checkpoint

__all__ = ["ReleaseError", "convert", "convert_release", "find_release", "load_classifier", "read_release"]

INPUT_SIZE = 480
OPSET = 17
FINGERPRINT_MODULES = ("sleuth.convert.fx_program", "sleuth.convert.unpickle", "sleuth.convert.onnx_export")


class ReleaseError(ValueError):
    """A SpeciesNet release folder or archive is incomplete or inconsistent (the message names the file)."""


class _VariableFunctions:
    """Stands in for ``torch._C._VariableFunctionsClass``: ``getattr`` of it names a torch function."""


def _getattr(obj: Any, name: str) -> Any:
    if obj is _VariableFunctions and isinstance(name, str):
        qual = f"torch.{name}"
        if qual in FN_MARKERS:
            return FnMarker(FN_MARKERS[qual])
        raise CheckpointError(f"the pickle names torch function {qual}, which sleuth does not implement")
    raise CheckpointError(f"the pickle asks for attribute {name!r} of {obj!r}; refused")


def _functions() -> dict[str, Any]:
    funcs: dict[str, Any] = {
        "torch.fx.graph_module.reduce_graph_module": PickledGraph,
        "torch._C._VariableFunctionsClass": _VariableFunctions,
        "__builtin__.getattr": _getattr,
        "builtins.getattr": _getattr,
    }
    for qual, name in FN_MARKERS.items():
        if not qual.startswith("torch."):
            funcs[qual] = FnMarker(name)
    return funcs


def load_classifier(pt_path: Path) -> FxProgram:
    """The release's ``.pt`` as an :class:`FxProgram` (restricted unpickling; nothing of upstream runs)."""
    graph = load_checkpoint(pt_path, [*LAYERS, *CONTAINERS], functions=_functions())
    if not isinstance(graph, PickledGraph):
        raise CheckpointError(
            f"{pt_path}: expected a pickled torch.fx GraphModule (SpeciesNet's PyTorch release), "
            f"found {type(graph).__name__}"
        )
    try:
        return FxProgram(graph)
    except CheckpointError as e:
        raise CheckpointError(f"{pt_path}: {e}") from e


def find_release(root: Path) -> Path:
    """The folder holding ``info.json`` (``root`` itself or its only sub-folder that has one)."""
    if (root / "info.json").is_file():
        return root
    found = sorted(p.parent for p in root.rglob("info.json") if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        raise ReleaseError(f"{root}: no info.json (not a SpeciesNet release folder)")
    raise ReleaseError(f"{root}: several info.json files ({', '.join(str(p) for p in found)}); give one folder")


def read_release(folder: Path) -> dict[str, Any]:
    """``info.json`` checked: version, type, and each named file present (a ReleaseError names what is not)."""
    info_path = folder / "info.json"
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReleaseError(f"{info_path}: not readable JSON ({e})") from e
    if not isinstance(info, dict):
        raise ReleaseError(f"{info_path}: expected a JSON object")
    for key in ("version", "type", "classifier", "classifier_labels"):
        if not isinstance(info.get(key), str) or not info[key].strip():
            raise ReleaseError(f"{info_path}: {key!r} is missing")
    if info["type"] not in ("always_crop", "full_image"):
        raise ReleaseError(f"{info_path}: unknown type {info['type']!r}")
    for key in ("classifier", "classifier_labels", "taxonomy", "geofence"):
        name = info.get(key)
        if name is None:
            continue
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise ReleaseError(f"{info_path}: {key} must be a file name in the folder, got {name!r}")
        if not (folder / name).is_file():
            what = "labels file" if key == "classifier_labels" else f"{key} file"
            raise ReleaseError(f"{folder}: the {what} {name} named in info.json is missing")
    return info


@contextlib.contextmanager
def _unpacked(source: Path) -> Iterator[Path]:
    """A folder for ``source``: itself, or a tar archive extracted (safely) into a temporary folder."""
    if source.is_dir():
        yield source
        return
    tmp = Path(tempfile.mkdtemp(prefix="sleuth-speciesnet-"))
    try:
        try:
            if zipfile.is_zipfile(source):  # Kaggle may serve a zip; members must stay inside the folder
                with zipfile.ZipFile(source) as zf:
                    for name in zf.namelist():
                        target = (tmp / name).resolve()
                        if not target.is_relative_to(tmp.resolve()):
                            raise ValueError(f"member {name!r} points outside the archive")
                    zf.extractall(tmp)
            else:
                with tarfile.open(source) as tf:
                    tf.extractall(tmp, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
            raise ReleaseError(f"{source}: not a readable SpeciesNet archive ({type(e).__name__}: {e})") from e
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _labels(path: Path) -> list[str]:
    from sleuth.models.speciesnet import _read_label_lines

    try:
        return _read_label_lines(path, "labels file")
    except Exception as e:  # ModelError: keep one error type for callers
        raise ReleaseError(str(e)) from e


def convert_release(source: Path, out_dir: Path) -> dict[str, Path]:
    """Convert a release folder or ``.tar.gz`` into ``out_dir`` (``info.json``, ``model.onnx``, labels, ...).

    Returns ``{"info": ..., "onnx": ..., "labels": ..., ["taxonomy": ..., "geofence": ...]}``.
    """
    import torch

    from sleuth.convert.onnx_export import trace_to_onnx
    from sleuth.models.speciesnet import validate_geofence

    out_dir.mkdir(parents=True, exist_ok=True)
    with _unpacked(source) as root:
        folder = find_release(root)
        info = read_release(folder)
        pt = folder / info["classifier"]
        if pt.suffix.lower() not in (".pt", ".pth"):
            raise ReleaseError(
                f"{pt.name}: sleuth converts SpeciesNet's PyTorch releases (.pt); this release's classifier "
                "is not one (for Keras releases, download the PyTorch variant of the same version)"
            )
        labels_path = folder / info["classifier_labels"]
        labels = _labels(labels_path)
        if not labels:
            raise ReleaseError(f"{labels_path}: no labels")
        produced: dict[str, Path] = {}
        for key in ("classifier_labels", "taxonomy", "geofence"):
            if info.get(key):
                dest = out_dir / info[key]
                shutil.copyfile(folder / info[key], dest)
                produced[{"classifier_labels": "labels"}.get(key, key)] = dest
        if "geofence" in produced:
            try:
                validate_geofence(
                    json.loads(produced["geofence"].read_text(encoding="utf-8")), str(folder / info["geofence"])
                )
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                raise ReleaseError(f"{folder / info['geofence']}: not valid JSON ({e})") from e
            except Exception as e:  # ModelError from validate_geofence
                raise ReleaseError(str(e)) from e
        program = load_classifier(pt)
        if len(program.inputs) != 1:
            raise ReleaseError(f"{pt}: expected a classifier with one input, found {len(program.inputs)}")
        module = program.as_module()
        dummy = torch.rand(1, INPUT_SIZE, INPUT_SIZE, 3, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            out = module(dummy)
        if not isinstance(out, torch.Tensor) or out.dim() != 2:
            raise ReleaseError(f"{pt}: expected [batch, n_labels] logits, got {getattr(out, 'shape', type(out))}")
        if out.shape[1] != len(labels):
            raise ReleaseError(
                f"{pt.name} has {out.shape[1]} outputs but {labels_path.name} has {len(labels)} labels; "
                "they must come from the same release"
            )
        onnx_path = trace_to_onnx(
            module,
            dummy,
            out_dir / "model.onnx",
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset=OPSET,
            metadata={
                "source": pt.name,
                "speciesnet_version": info["version"],
                "converter": "sleuth.convert.speciesnet",
            },
        )
        produced["onnx"] = onnx_path
        served = {
            "version": info["version"],
            "type": info["type"],
            "classifier": "model.onnx",
            "classifier_labels": info["classifier_labels"],
            "source_classifier": info["classifier"],
        }
        for key in ("taxonomy", "geofence"):
            if info.get(key):
                served[key] = info[key]
        (out_dir / "info.json").write_text(json.dumps(served, indent=2) + "\n", encoding="utf-8")
        produced["info"] = out_dir / "info.json"
        return produced


def convert(artefacts: Mapping[str, Path], out_dir: Path) -> dict[str, Path]:
    """Catalog converter: the ``archive`` artefact (the release's tar.gz) -> the served folder."""
    if "archive" not in artefacts:
        raise ReleaseError("a SpeciesNet catalog entry needs an artefact named 'archive'")
    return convert_release(Path(artefacts["archive"]), out_dir)


def release_version(source: Path) -> str:
    """The ``version`` in a release folder's or archive's ``info.json`` (nothing is converted)."""
    with _unpacked(source) as root:
        return str(read_release(find_release(root))["version"])


def pack_folder(folder: Path, dest: Path) -> Path:
    """A release folder as a gzipped tar of its files (sorted, fixed times: the same folder, the same bytes)."""
    import gzip

    root = find_release(folder)
    with (
        open(dest, "wb") as out,
        gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tf,
    ):
        for f in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
            ti = tarfile.TarInfo(f.name)
            ti.size, ti.mtime, ti.mode = f.stat().st_size, 0, 0o644
            with open(f, "rb") as fh:
                tf.addfile(ti, fh)
    return dest
