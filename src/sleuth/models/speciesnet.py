"""A SpeciesNet model folder as a classifier pack.

Layout (SpeciesNet's own model package, as read by ``speciesnet.utils.ModelInfo``)::

    <folder>/
      info.json               {"version", "type": "always_crop"|"full_image", "classifier",
                               "classifier_labels", "taxonomy", "geofence", "detector"?}
      <classifier file>       ONNX here (SpeciesNet ships Keras/PyTorch: export it to ONNX first)
      labels.txt              one 7-field label string per classifier output index
      taxonomy_release.txt    7-field label strings of the whole taxonomy (optional)
      geofence_release.json   {"<class;order;family;genus;species>": {"allow"|"block":
                               {"<ISO3 country>": ["<admin1>", ...]}}} (optional)

``info.json`` file names default to ``model.onnx``, ``labels.txt``,
``taxonomy_release.txt`` and ``geofence_release.json`` when absent. ``detector`` is ignored
(sleuth runs its own detector).

Classifier I/O: one image input, float32 RGB in [0, 1], NHWC ``[batch, S, S, 3]`` (SpeciesNet's
layout) or NCHW ``[batch, 3, S, S]``; S comes from the ONNX input shape (480 when dynamic).
Crops are resized to SxS with plain (non-antialiased) bilinear interpolation as SpeciesNet does.
The output is ``[batch, n_labels]`` logits (softmax is applied) unless info.json has
``"sleuth_output": "probabilities"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session
from sleuth.models.classifier import Prediction, as_rgb_uint8, parse_label

DEFAULT_FILES = {
    "classifier": "model.onnx",
    "classifier_labels": "labels.txt",
    "taxonomy": "taxonomy_release.txt",
    "geofence": "geofence_release.json",
}
DEFAULT_SIZE = 480
_UNSUPPORTED = {
    ".keras": "a Keras model",
    ".h5": "a Keras HDF5 model",
    ".pt": "a PyTorch pickle",
    ".pth": "a PyTorch pickle",
    ".pb": "a TensorFlow graph",
    ".tflite": "a TFLite model",
}


def _read_label_lines(path: Path, what: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ModelError(f"cannot read {what} {path}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{what} {path} is not UTF-8 text") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for n, ln in enumerate(lines, start=1):
        try:
            parse_label(ln)
        except ValueError as exc:
            raise ModelError(f"{what} {path} line {n}: {exc}") from exc
    return lines


def validate_geofence(doc: Any, origin: str = "geofence") -> dict[str, dict[str, dict[str, list[str]]]]:
    """Check a SpeciesNet geofence map; returns it (``ModelError`` naming the first problem)."""
    if not isinstance(doc, dict):
        raise ModelError(f"{origin}: expected a JSON object keyed by taxon strings")
    for taxon, rules in doc.items():
        if not isinstance(taxon, str) or len(taxon.split(";")) != 5:
            raise ModelError(f"{origin}: key {taxon!r} is not a 5-field 'class;order;family;genus;species' string")
        if not isinstance(rules, dict) or not set(rules) <= {"allow", "block"}:
            raise ModelError(f"{origin}: {taxon!r} must map to an object with only 'allow'/'block' keys")
        for kind, countries in rules.items():
            if not isinstance(countries, dict):
                raise ModelError(f"{origin}: {taxon!r}.{kind} must map country codes to admin1 lists")
            for country, regions in countries.items():
                if not isinstance(country, str) or len(country) != 3:
                    raise ModelError(f"{origin}: {taxon!r}.{kind}: {country!r} is not an ISO alpha-3 country")
                if not isinstance(regions, list) or not all(isinstance(r, str) for r in regions):
                    raise ModelError(f"{origin}: {taxon!r}.{kind}.{country} must be a list of admin1 codes")
    return doc


class SpeciesNetFolder(Model[np.ndarray, np.ndarray, np.ndarray, Prediction]):
    """Classifier pack backed by a SpeciesNet-format model folder with an ONNX classifier.

    Pack API: ``model_id``, ``labels`` (classifier output order), ``taxonomy_release``
    (``list[str] | None``), ``geofence`` (``dict | None``), ``has_range_data``,
    ``classify(crops, top_k)``. ``load({"folder": path})`` or ``SpeciesNetFolder.open(path)``.
    """

    name = "speciesnet-folder"
    max_batch_size = 8

    def __init__(self, top_k: int = 5) -> None:
        self.top_k = top_k
        self.model_id = ""
        self.version = ""
        self.model_type = ""
        self.labels: list[str] = []
        self.taxonomy_release: list[str] | None = None
        self.geofence: dict[str, Any] | None = None
        self.has_range_data = False
        self.folder: Path | None = None
        self._session: Any = None
        self._input_name = ""
        self._nchw = False
        self._size = DEFAULT_SIZE
        self._logits = True

    @classmethod
    def open(cls, folder: str | Path, providers: Sequence[str] | None = None, top_k: int = 5) -> SpeciesNetFolder:
        pack = cls(top_k=top_k)
        pack.load({"folder": Path(folder)}, providers)
        return pack

    # -- Model interface -------------------------------------------------------------
    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        if "folder" not in artefacts:
            raise ModelError("SpeciesNetFolder needs artefact 'folder' (the model folder)")
        folder = Path(artefacts["folder"])
        if not folder.is_dir():
            raise ModelError(f"SpeciesNet model folder not found: {folder}")
        info_path = folder / "info.json"
        if not info_path.is_file():
            raise ModelError(f"{folder}: missing info.json")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(f"{info_path}: not valid JSON ({exc})") from exc
        if not isinstance(info, dict):
            raise ModelError(f"{info_path}: expected a JSON object")

        def named(key: str) -> tuple[Path, bool]:
            value = info.get(key)
            if value is not None and not isinstance(value, str):
                raise ModelError(f"{info_path}: {key!r} must be a file name")
            return folder / (value or DEFAULT_FILES[key]), value is not None

        clf_path, _ = named("classifier")
        if clf_path.suffix.lower() in _UNSUPPORTED or clf_path.is_dir():
            what = "a TensorFlow SavedModel folder" if clf_path.is_dir() else _UNSUPPORTED[clf_path.suffix.lower()]
            raise ModelError(
                f"{clf_path.name} is {what}; sleuth runs ONNX classifiers only - export the classifier "
                "to ONNX (e.g. tf2onnx or torch.onnx) and point info.json 'classifier' at the .onnx file"
            )
        if not clf_path.is_file():
            raise ModelError(f"{folder}: classifier file {clf_path.name} not found")
        if clf_path.suffix.lower() != ".onnx":
            raise ModelError(f"{clf_path.name}: unsupported classifier format (expected .onnx)")
        labels_path, _ = named("classifier_labels")
        if not labels_path.is_file():
            raise ModelError(f"{folder}: labels file {labels_path.name} not found")
        labels = _read_label_lines(labels_path, "labels file")
        if not labels:
            raise ModelError(f"{labels_path}: no labels")

        tax_path, tax_named = named("taxonomy")
        taxonomy: list[str] | None = None
        if tax_path.is_file():
            taxonomy = _read_label_lines(tax_path, "taxonomy file")
        elif tax_named:
            raise ModelError(f"{folder}: taxonomy file {tax_path.name} named in info.json not found")

        geo_path, geo_named = named("geofence")
        geofence: dict[str, Any] | None = None
        if geo_path.is_file():
            try:
                geofence = validate_geofence(json.loads(geo_path.read_text(encoding="utf-8")), str(geo_path))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelError(f"{geo_path}: not valid JSON ({exc})") from exc
        elif geo_named:
            raise ModelError(f"{folder}: geofence file {geo_path.name} named in info.json not found")

        model_type = str(info.get("type", "always_crop"))
        if model_type not in ("always_crop", "full_image"):
            raise ModelError(f"{info_path}: unknown model type {model_type!r}")
        output = str(info.get("sleuth_output", "logits"))
        if output not in ("logits", "probabilities"):
            raise ModelError(f"{info_path}: sleuth_output must be 'logits' or 'probabilities'")

        try:
            sess = create_session(clf_path, providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises several exception types
            raise ModelError(f"cannot load classifier {clf_path}: {exc}") from exc
        inputs, outputs = sess.get_inputs(), sess.get_outputs()
        if len(inputs) != 1:
            raise ModelError(f"{clf_path.name}: expected one input, found {len(inputs)}")
        shape = list(inputs[0].shape)
        if len(shape) != 4 or (shape[3] != 3 and shape[1] != 3):
            raise ModelError(f"{clf_path.name}: expected an image input [b,S,S,3] or [b,3,S,S], got {shape}")
        nchw = shape[1] == 3 and shape[3] != 3
        hw = shape[2:4] if nchw else shape[1:3]
        size = DEFAULT_SIZE
        if all(isinstance(d, int) for d in hw):
            if hw[0] != hw[1]:
                raise ModelError(f"{clf_path.name}: expected a square input, got {shape}")
            size = int(hw[0])
        n_out = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(n_out, int) and n_out != len(labels):
            raise ModelError(
                f"{folder}: the classifier has {n_out} outputs but {labels_path.name} has {len(labels)} labels"
            )

        self.folder = folder
        self.version = str(info.get("version", ""))
        self.model_type = model_type
        self.model_id = f"speciesnet-{self.version}" if self.version else f"speciesnet-{folder.name}"
        self.name = self.model_id
        self.labels = labels
        self.taxonomy_release = taxonomy
        self.geofence = geofence
        self.has_range_data = bool(geofence)
        self._session = sess
        self._input_name = inputs[0].name
        self._nchw = nchw
        self._size = size
        self._logits = output == "logits"

    def preprocess(self, item: np.ndarray) -> np.ndarray:
        img = as_rgb_uint8(item)
        if img.shape[:2] != (self._size, self._size):
            img = cv2.resize(img, (self._size, self._size), interpolation=cv2.INTER_LINEAR)
        x = img.astype(np.float32) / 255.0
        return np.ascontiguousarray(x.transpose(2, 0, 1)) if self._nchw else x

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self._session is None:
            raise ModelError("SpeciesNetFolder.load() was not called")
        if not inputs:
            return []
        out = self._session.run(None, {self._input_name: np.stack(inputs)})[0]
        out = np.asarray(out, dtype=np.float64).reshape(len(inputs), -1)
        if out.shape[1] != len(self.labels):
            raise ModelError(f"classifier returned {out.shape[1]} scores for {len(self.labels)} labels")
        if self._logits:
            out = out - out.max(axis=1, keepdims=True)
            out = np.exp(out)
            out /= out.sum(axis=1, keepdims=True)
        return [row.astype(np.float32) for row in out]

    def postprocess(self, raw: np.ndarray, prepared: np.ndarray) -> Prediction:
        return self._top(raw, self.top_k)

    # -- pack API ----------------------------------------------------------------------
    def classify(self, crops: Sequence[np.ndarray], top_k: int = 5) -> list[Prediction]:
        """Top-k ``[(label_string, score)]`` per crop (HxWx3 uint8 RGB arrays)."""
        prepared = [self.preprocess(c) for c in crops]
        out: list[Prediction] = []
        for start in range(0, len(prepared), self.max_batch_size):
            out.extend(self._top(r, top_k) for r in self.predict_batch(prepared[start : start + self.max_batch_size]))
        return out

    def _top(self, probs: np.ndarray, top_k: int) -> Prediction:
        k = max(0, min(top_k, len(self.labels)))
        order = np.argsort(-probs, kind="stable")[:k]
        return [(self.labels[i], float(probs[i])) for i in order]


class SpeciesNetRelease(SpeciesNetFolder):
    """A SpeciesNet catalog entry (``speciesnet-<version>``): the folder its converter wrote (``info``)."""

    name = "speciesnet-release"

    def __init__(self, top_k: int = 11) -> None:
        super().__init__(top_k=top_k)

    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        if "info" not in artefacts:
            raise ModelError("a SpeciesNet release entry needs its converted folder (produced 'info'); pull it again")
        super().load({"folder": Path(artefacts["info"]).parent}, providers)
