"""Species classifier on detector box crops: the Coral MobileNetV2 pack (ImageNet + iNat birds).

Output labels are SpeciesNet-format strings
``"<uuid>;<class>;<order>;<family>;<genus>;<species>;<common name>"`` taken from the
committed taxonomy files ``sleuth/data/taxonomy/<model>.json`` (built from WordNet by
``scripts/make_taxonomy.py``; see ``docs/classifier.md``).

How the two heads are combined (per crop):

1. The ImageNet head gives 1001 probabilities. Each index has a kind in the taxonomy:
   ``animal`` labels are kept as they are; the ``human`` indices are summed into one
   SpeciesNet HUMAN entry, the ``vehicle`` indices into one VEHICLE entry, and the
   background index becomes BLANK. ``object`` indices (furniture, tools, ...) are never
   output: their probability mass is simply left out, so scores need not sum to 1.
2. ``bird_share`` = the summed probability of ImageNet labels of class ``aves``. When the
   iNat birds head is loaded, the main head's best answer is a bird and ``bird_share >=
   bird_gate`` (default 0.05), the birds head runs on that crop; unless it says "background"
   with probability >= 0.5, the ImageNet bird entries are replaced by the iNat species, each scored
   ``bird_share * p_inat(species) / (1 - p_inat(background))``. The birds head thus
   refines *which* bird, while ImageNet decides *whether* it is a bird.
3. Entries with the same label string are summed; the top-k by score are returned.

Every pack object (this one and ``sleuth.models.speciesnet.SpeciesNetFolder``) exposes
the same small API used by the wildlife ensemble: ``model_id``, ``labels``,
``classify(crops, top_k)``, ``geofence`` (``dict | None``) and ``has_range_data``.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from sleuth.engine.base import Model, ModelError
from sleuth.engine.runtime import create_session

# SpeciesNet's special labels (google/cameratrapai speciesnet/constants.py).
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
ANIMAL = "1f689929-883d-4dae-958c-3d57ab5b6c16;;;;;;animal"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"
UNKNOWN = "f2efdae9-efb8-48fb-8a91-eccf79ab4ffb;" + ";".join(["no cv result"] * 6)

TAXONOMY_FIELDS = ("id", "class", "order", "family", "genus", "species", "common_name")

Prediction = list[tuple[str, float]]


def parse_label(label: str) -> dict[str, str]:
    """Split a SpeciesNet label string into its 7 named fields; ``ValueError`` if malformed."""
    parts = label.split(";")
    if len(parts) != 7:
        raise ValueError(f"not a SpeciesNet label (expected 7 ';'-separated fields): {label!r}")
    return dict(zip(TAXONOMY_FIELDS, parts, strict=True))


@runtime_checkable
class ClassifierPack(Protocol):
    """What the wildlife ensemble needs from a species classifier."""

    model_id: str
    labels: list[str]
    geofence: dict[str, Any] | None
    has_range_data: bool

    def classify(self, crops: Sequence[np.ndarray], top_k: int = 5) -> list[Prediction]: ...


def as_rgb_uint8(image: Any) -> np.ndarray:
    """Validate/convert an image to a contiguous HxWx3 uint8 RGB array (``ValueError`` if unusable)."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise ValueError(f"expected an RGB image as a numpy uint8 array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"empty image (shape {image.shape})")
    return np.ascontiguousarray(image)


def crop_box_px(width: int, height: int, bbox_norm: Sequence[float], margin: float = 0.0) -> tuple[int, int, int, int]:
    """Pixel box ``(left, top, right, bottom)`` of a normalised ``[x, y, w, h]`` box.

    ``margin`` enlarges the box by that fraction of its width/height on every side.
    The box is clipped to the image and truncated with ``int()`` (as the Coral reference
    outputs were made), and is at least one pixel in each direction.
    """
    if len(bbox_norm) != 4:
        raise ValueError(f"bbox must be [x, y, w, h], got {list(bbox_norm)!r}")
    x, y, w, h = (float(v) for v in bbox_norm)
    if not all(math.isfinite(v) for v in (x, y, w, h, margin)):
        raise ValueError(f"bbox/margin must be finite numbers, got {list(bbox_norm)!r}, margin {margin!r}")
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox width and height must be positive, got {list(bbox_norm)!r}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    x1, y1 = max(0.0, x - margin * w), max(0.0, y - margin * h)
    x2, y2 = min(1.0, x + w + margin * w), min(1.0, y + h + margin * h)
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"bbox {list(bbox_norm)!r} lies outside the image")
    left, top, right, bottom = int(x1 * width), int(y1 * height), int(x2 * width), int(y2 * height)
    left, top = min(left, width - 1), min(top, height - 1)
    right, bottom = max(right, left + 1), max(bottom, top + 1)
    return left, top, right, bottom


def crop_box(image: np.ndarray, bbox_norm: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """Crop an HxWx3 image to a normalised ``[x, y, w, h]`` box (see ``crop_box_px``)."""
    img = as_rgb_uint8(image)
    left, top, right, bottom = crop_box_px(img.shape[1], img.shape[0], bbox_norm, margin)
    return img[top:bottom, left:right]


# --------------------------------------------------------------------------------------
# taxonomy files


@dataclass(frozen=True)
class Taxonomy:
    """One head's label table: SpeciesNet label string and kind per model output index."""

    model: str
    labels: list[str]
    kinds: list[str]
    labels_sha256: str

    @property
    def n(self) -> int:
        return len(self.labels)


TAXONOMY_DIR = Path(__file__).resolve().parents[1] / "data" / "taxonomy"


def _taxonomy_files() -> list[Path]:
    return sorted(TAXONOMY_DIR.glob("*.json"))


def load_taxonomy(model: str | None = None, labels_sha256: str | None = None) -> Taxonomy:
    """Load a committed taxonomy file by model name or by the sha256 of its labels file."""
    for res in _taxonomy_files():
        doc = json.loads(res.read_text(encoding="utf-8"))
        if (model is not None and doc["model"] == model) or (
            labels_sha256 is not None and doc["labels_sha256"] == labels_sha256
        ):
            entries = sorted(doc["labels"], key=lambda e: e["index"])
            if [e["index"] for e in entries] != list(range(len(entries))):
                raise ModelError(f"taxonomy {res.name}: indices are not 0..n-1")
            return Taxonomy(
                model=doc["model"],
                labels=[e["label"] for e in entries],
                kinds=[e["kind"] for e in entries],
                labels_sha256=doc["labels_sha256"],
            )
    raise ModelError(f"no taxonomy file for model={model!r} labels_sha256={labels_sha256!r}")


# --------------------------------------------------------------------------------------
# the Coral pack


@dataclass
class _Head:
    session: Any
    input_name: str
    out_scale: float
    out_zero_point: int
    taxonomy: Taxonomy

    def run(self, batch: np.ndarray) -> np.ndarray:
        q = self.session.run(None, {self.input_name: batch})[0]
        if q.ndim != 2 or q.shape[1] != self.taxonomy.n:
            raise ModelError(f"{self.taxonomy.model}: output shape {q.shape}, expected (n, {self.taxonomy.n})")
        return (q.astype(np.float32) - self.out_zero_point) * self.out_scale


def _open_head(onnx_path: Path, labels_path: Path, providers: Sequence[str] | None) -> _Head:
    labels_path = Path(labels_path)
    if not labels_path.is_file():
        raise ModelError(f"labels file not found: {labels_path}")
    sha = hashlib.sha256(labels_path.read_bytes()).hexdigest()
    tax = load_taxonomy(labels_sha256=sha)
    if not Path(onnx_path).is_file():
        raise ModelError(f"model file not found: {onnx_path}")
    try:
        sess = create_session(onnx_path, providers)
    except Exception as exc:  # noqa: BLE001 - ORT raises several exception types
        raise ModelError(f"cannot load {onnx_path}: {exc}") from exc
    meta = sess.get_modelmeta().custom_metadata_map
    try:
        scale, zp = float(meta["output_scale"]), int(meta["output_zero_point"])
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{onnx_path}: not made by sleuth.convert.tflite (no output quantisation metadata)") from exc
    inp = sess.get_inputs()[0]
    if list(inp.shape[1:]) != [224, 224, 3]:
        raise ModelError(f"{onnx_path}: expected input [batch, 224, 224, 3], got {inp.shape}")
    return _Head(sess, inp.name, scale, zp, tax)


class CoralClassifier(Model[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray | None], Prediction]):
    """Coral MobileNetV2 ImageNet classifier, optionally refined by the iNat birds head.

    ``load`` artefacts: ``onnx`` + ``labels`` (the main head: whichever Coral model the
    labels file belongs to) and optionally ``birds_onnx`` + ``birds_labels``.
    Items are RGB crops (HxWx3 uint8); results are top-k ``[(label_string, score)]``.
    """

    name = "coral-imagenet"
    max_batch_size = 16
    input_size = 224
    # WordNet leaves genus/species empty where it has no scientific name ("dingo" reads as the
    # family canidae), so these labels must not name roll-up taxa (see pipelines.wildlife.run_pipeline).
    labels_name_taxa = False

    def __init__(self, top_k: int = 5, bird_gate: float = 0.05) -> None:
        self.top_k = top_k
        self.bird_gate = bird_gate
        self.model_id = "coral-imagenet"
        self.geofence: dict[str, Any] | None = None
        self.has_range_data = False
        self.labels: list[str] = []
        # the stand-in's per-rank cut-offs and cross-class rules: sleuth/data/label_policy/coral.toml,
        # read by the wildlife pipeline (pipelines.wildlife.label_policy)
        self.label_policy = "coral"
        self._main: _Head | None = None
        self._birds: _Head | None = None

    # -- Model interface -------------------------------------------------------------
    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        for key in ("onnx", "labels"):
            if key not in artefacts:
                raise ModelError(f"CoralClassifier needs artefact {key!r} (got {sorted(artefacts)})")
        self._main = _open_head(Path(artefacts["onnx"]), Path(artefacts["labels"]), providers)
        self._birds = None
        if "birds_onnx" in artefacts and "birds_labels" in artefacts:
            self._birds = _open_head(Path(artefacts["birds_onnx"]), Path(artefacts["birds_labels"]), providers)
            if self._birds.taxonomy.model != "coral-inat-birds":
                raise ModelError("birds_labels is not the iNat birds labels file")
        self.model_id = self._main.taxonomy.model + ("+coral-inat-birds" if self._birds else "")
        self.name = self._main.taxonomy.model
        # every label string this pack can output
        out: set[str] = set()
        for head in (self._main, self._birds):
            if head is None:
                continue
            kinds = set(head.taxonomy.kinds)
            out.update(lab for lab, k in zip(head.taxonomy.labels, head.taxonomy.kinds, strict=True) if k == "animal")
            out.update(lab for k, lab in (("human", HUMAN), ("vehicle", VEHICLE), ("background", BLANK)) if k in kinds)
        self.labels = sorted(out)

    def preprocess(self, item: np.ndarray) -> np.ndarray:
        img = as_rgb_uint8(item)
        if img.shape[:2] != (self.input_size, self.input_size):
            pil = Image.fromarray(img).resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
            img = np.asarray(pil, dtype=np.uint8)
        return img

    def predict_batch(self, inputs: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        if self._main is None:
            raise ModelError("CoralClassifier.load() was not called")
        if not inputs:
            return []
        batch = np.stack(inputs)
        main = self._main.run(batch)
        birds: list[np.ndarray | None] = [None] * len(inputs)
        if self._birds is not None:
            share = main[:, self._bird_idx()].sum(axis=1)
            gated = [i for i in range(len(inputs)) if share[i] >= self.bird_gate and self._says_bird(main[i])]
            if gated:
                pb = self._birds.run(batch[gated])
                for j, i in enumerate(gated):
                    birds[i] = pb[j]
        return [(main[i], birds[i]) for i in range(len(inputs))]

    def postprocess(self, raw: tuple[np.ndarray, np.ndarray | None], prepared: np.ndarray) -> Prediction:
        return self.combine(raw[0], raw[1], self.top_k)

    # -- pack API ----------------------------------------------------------------------
    def classify(self, crops: Sequence[np.ndarray], top_k: int = 5) -> list[Prediction]:
        """Top-k ``[(label_string, score)]`` per crop (crops: HxWx3 uint8 RGB arrays)."""
        prepared = [self.preprocess(c) for c in crops]
        out: list[Prediction] = []
        for start in range(0, len(prepared), self.max_batch_size):
            chunk = prepared[start : start + self.max_batch_size]
            for main, birds in self.predict_batch(chunk):
                out.append(self.combine(main, birds, top_k))
        return out

    # -- internals ---------------------------------------------------------------------
    def _bird_idx(self) -> np.ndarray:
        assert self._main is not None
        cached = getattr(self, "_bird_idx_cache", None)
        if cached is None:
            tax = self._main.taxonomy
            cached = np.array(
                [
                    i
                    for i, (lab, k) in enumerate(zip(tax.labels, tax.kinds, strict=True))
                    if k == "animal" and _is_bird(lab)
                ],
                dtype=np.int64,
            )
            self._bird_idx_cache = cached
        return cached

    def _says_bird(self, main: np.ndarray) -> bool:
        """Whether the main head's best answer (animal, human, vehicle or background) is a bird."""
        assert self._main is not None
        cached = getattr(self, "_answer_idx_cache", None)
        if cached is None:
            kinds = self._main.taxonomy.kinds
            cached = np.array([i for i, k in enumerate(kinds) if k != "object"], dtype=np.int64)
            self._answer_idx_cache = cached
        if not cached.size:
            return False
        best = int(cached[int(np.argmax(main[cached]))])
        tax = self._main.taxonomy
        return tax.kinds[best] == "animal" and _is_bird(tax.labels[best])

    def combine(self, main: np.ndarray, birds: np.ndarray | None, top_k: int) -> Prediction:
        """Merge one crop's head outputs into SpeciesNet labels (see the module docstring)."""
        assert self._main is not None
        tax = self._main.taxonomy
        scores: dict[str, float] = {}
        use_birds = False
        bird_share = 0.0
        if birds is not None and self._birds is not None:
            bg = [i for i, k in enumerate(self._birds.taxonomy.kinds) if k == "background"]
            p_bg = float(birds[bg].sum()) if bg else 0.0
            bird_share = float(main[self._bird_idx()].sum())
            use_birds = p_bg < 0.5 and bird_share > 0.0 and self._says_bird(main)
        for i, p in enumerate(main):
            p = float(p)
            if p <= 0.0:
                continue
            kind = tax.kinds[i]
            if kind == "object":
                continue
            lab = tax.labels[i]
            if kind == "human":
                lab = HUMAN
            elif kind == "vehicle":
                lab = VEHICLE
            elif kind == "background":
                lab = BLANK
            elif use_birds and _is_bird(lab):
                continue
            scores[lab] = scores.get(lab, 0.0) + p
        if use_birds and birds is not None and self._birds is not None:
            btax = self._birds.taxonomy
            animal = [i for i, k in enumerate(btax.kinds) if k == "animal"]
            denom = float(birds[animal].sum())
            if denom > 0:
                for i in animal:
                    p = float(birds[i])
                    if p > 0:
                        lab = btax.labels[i]
                        scores[lab] = scores.get(lab, 0.0) + bird_share * p / denom
        ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        return [(lab, round(s, 6)) for lab, s in ranked[: max(0, top_k)]]


def _is_bird(label: str) -> bool:
    return label.split(";")[1] == "aves"


def load_coral_pack(
    providers: Sequence[str] | None = None, birds: bool = True, top_k: int = 5, settings: Any = None
) -> CoralClassifier:
    """The default classifier pack from the model catalog (``coral-imagenet`` [+ ``coral-inat-birds``])."""
    import importlib

    catalog = importlib.import_module("sleuth.engine.catalog")
    main = catalog.ensure("coral-imagenet", settings)
    arts: dict[str, Path] = {"onnx": main["onnx"], "labels": main["labels"]}
    if birds:
        b = catalog.ensure("coral-inat-birds", settings)
        arts["birds_onnx"], arts["birds_labels"] = b["onnx"], b["labels"]
    pack = CoralClassifier(top_k=top_k)
    pack.load(arts, providers)
    return pack
