"""Wildlife accuracy of the bundled models on the shared camera-trap set: boxes and labels.

Scores what a user of ``POST /v1/batch-detect`` gets (``services.wildlife.run_images``, the ``default``
profile unless ``--profile``) on every decodable image of ``../shared/data/camera_traps``:

* **Detection**, per set and per category, at IoU >= 0.5 (one-to-one, best score first) against the
  reference boxes: the ``speciesnet/`` set's MDv5a boxes with conf >= 0.2 (its boxes between 0.01 and 0.2 are
  "don't care": a box on one is neither found nor false), every box of the other sets. A *false box* is an
  annotation that matches no reference box; false boxes on the blank images are counted separately.
* **Recall at an equal number of false boxes on the blanks**: a calibration changes what a threshold means,
  so detectors are also compared at the lowest threshold (>= 0.01) that leaves at most *k* false boxes on the
  blank images (from a detector-only run at 0.01, ``/v1/batch-filter``'s path).
* **Labels**, per taxonomic rank, on the annotations that match a reference animal box: how often a label at
  that rank or finer is given (coverage, over the found animal boxes) and how often a label reported at that
  rank is right (precision). Truth is the image's label with its taxonomy below (``TRUTH``); a rank the truth
  does not know (e.g. which fox) makes a label at that rank *unverifiable*: counted, left out of precision.
  WordNet (the Coral stand-in's taxonomy) and SpeciesNet spell some taxa differently; both spellings count.
* **Cross-class labels**: an animal label whose taxonomic class is not the truth's (a bird on an elephant);
  counted apart, **wrong categories**: an animal taxon on a person/vehicle box, or human/vehicle on an animal
  box (a detector or relabeler error rather than a classifier one).
* **Leave-one-out** figures for what is fitted on this set (see ``--help``): the fitted part is refitted
  without the held-out part and scored on it.

The set is tiny (about 20 scenes: the five elephant files are one scene, the 14 squirrel frames one camera).
Read every figure with that in mind. Usage (from the repo root)::

    SLEUTH_MODEL_MIRROR=../shared/data/models python benchmarks/accuracy.py [--threshold 0.2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CT = DATA / "camera_traps"

IOU = 0.5
REF_CONF = 0.2  # speciesnet/ MDv5a reference boxes kept as truth
RANKS = ("species", "genus", "family", "order", "class")
_FIELD = {"class": 0, "order": 1, "family": 2, "genus": 3, "species": 4}

# Truth per image label: class, order, family, genus, species epithet; a set lists accepted spellings
# (SpeciesNet / WordNet), None = not known from the data (animl "fox" may be grey or kit fox, etc.).
_T = tuple[frozenset[str] | None, ...]


def _taxa(*ranks: str | Iterable[str] | None) -> _T:
    out: list[frozenset[str] | None] = []
    for r in ranks:
        if r is None:
            out.append(None)
        elif isinstance(r, str):
            out.append(frozenset({r}))
        else:
            out.append(frozenset(r))
    return tuple(out)


_ARTIO = ("cetartiodactyla", "artiodactyla")
TRUTH: dict[str, _T] = {
    "african elephant": _taxa("mammalia", "proboscidea", "elephantidae", "loxodonta", "africana"),
    "american black bear": _taxa("mammalia", "carnivora", "ursidae", ("ursus", "euarctos"), "americanus"),
    "domestic cattle": _taxa("mammalia", _ARTIO, "bovidae", "bos", "taurus"),
    "domestic dog": _taxa("mammalia", "carnivora", "canidae", "canis", "familiaris"),
    "ocelot": _taxa("mammalia", "carnivora", "felidae", ("leopardus", "felis"), "pardalis"),
    "deer": _taxa("mammalia", _ARTIO, "cervidae", None, None),
    "cougar": _taxa("mammalia", "carnivora", "felidae", ("puma", "felis"), "concolor"),
    "coyote": _taxa("mammalia", "carnivora", "canidae", "canis", "latrans"),
    "fox": _taxa("mammalia", "carnivora", "canidae", None, None),
    "rabbit": _taxa("mammalia", "lagomorpha", "leporidae", None, None),
    "wolf": _taxa("mammalia", "carnivora", "canidae", "canis", "lupus"),
    "bobcat": _taxa("mammalia", "carnivora", "felidae", "lynx", "rufus"),
    "owl": _taxa("aves", "strigiformes", None, None, None),
    "squirrel": _taxa("mammalia", "rodentia", "sciuridae", None, None),
}


# ------------------------------------------------------------------------------------------------
# matching


def iou(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> np.ndarray:
    """IoU of normalised ``[x, y, w, h]`` boxes: (len(a), len(b))."""
    from sleuth.models.detection import iou_matrix, norm_xywh_to_xyxy

    return iou_matrix(norm_xywh_to_xyxy(a), norm_xywh_to_xyxy(b))


def match(
    preds: Sequence[Sequence[float]], scores: Sequence[float], truth: Sequence[Sequence[float]], thr: float = IOU
) -> list[int | None]:
    """Greedy one-to-one matching, best score first: per prediction the truth index it takes (or None)."""
    out: list[int | None] = [None] * len(preds)
    if not len(preds) or not len(truth):
        return out
    m = iou(preds, truth)
    free = set(range(len(truth)))
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        cands = [(m[i, j], j) for j in free if m[i, j] >= thr]
        if cands:
            _, j = max(cands)
            out[int(i)] = j
            free.discard(j)
    return out


# ------------------------------------------------------------------------------------------------
# data


@dataclass
class Ref:
    bbox: list[float]
    category: str  # animal / person / vehicle
    care: bool  # False: a low-confidence MDv5a box (neither found nor false)


@dataclass
class Item:
    path: str
    set: str
    kind: str
    label: str | None
    refs: list[Ref]
    data: bytes = b""

    @property
    def group(self) -> str:
        """The scene a held-out fold leaves out: the five elephant files are one scene."""
        name = Path(self.path).name
        if name.startswith("african_elephants"):
            return "speciesnet/african_elephants*"
        if self.set == "pw_ft_squirrels":
            return "pw_ft_squirrels/*"
        return self.path


def load_items(sets: Sequence[str] | None = None) -> list[Item]:
    man = json.loads((CT / "manifest.json").read_text())
    items = []
    for r in man["images"]:
        if r["kind"] == "invalid" or (sets and r["set"] not in sets):
            continue
        refs = []
        for b in r.get("boxes") or []:
            conf = b.get("conf")
            care = not (r["set"] == "speciesnet" and conf is not None and conf < REF_CONF)
            refs.append(Ref(list(b["bbox"]), b["category"], care))
        items.append(Item(r["path"], r["set"], r["kind"], r.get("label"), refs, (CT / r["path"]).read_bytes()))
    return items


# ------------------------------------------------------------------------------------------------
# scoring


@dataclass
class Box:
    bbox: list[float]
    score: float
    category: int = 1  # 1 animal, 2 person, 3 vehicle
    label: str = ""  # SpeciesNet 7-field label string ("" = none)
    source: str = ""


@dataclass
class DetCounts:
    refs: int = 0
    found: int = 0
    right_category: int = 0
    false: int = 0
    images: int = 0

    def add(self, o: DetCounts) -> None:
        for k in ("refs", "found", "right_category", "false", "images"):
            setattr(self, k, getattr(self, k) + getattr(o, k))


_CAT = {"animal": 1, "person": 2, "vehicle": 3}


def score_boxes(
    item: Item, boxes: Sequence[Box]
) -> tuple[DetCounts, dict[str, DetCounts], list[tuple[Box, Ref | None]]]:
    """Detection counts of one image, per-category counts, and each box with the reference it matched."""
    c = DetCounts(images=1)
    per_cat: dict[str, DetCounts] = {}
    cared = [r for r in item.refs if r.care]
    dont = [r for r in item.refs if not r.care]
    m = match([b.bbox for b in boxes], [b.score for b in boxes], [r.bbox for r in cared])
    c.refs = len(cared)
    for r in cared:
        per_cat.setdefault(r.category, DetCounts()).refs += 1
    pairs: list[tuple[Box, Ref | None]] = []
    unmatched = [k for k, j in enumerate(m) if j is None]
    m_dont = match([boxes[k].bbox for k in unmatched], [boxes[k].score for k in unmatched], [r.bbox for r in dont])
    dont_of = {k: dont[j] for k, j in zip(unmatched, m_dont, strict=True) if j is not None}
    for k, (b, j) in enumerate(zip(boxes, m, strict=True)):
        if j is not None:
            r = cared[j]
            c.found += 1
            pc = per_cat[r.category]
            pc.found += 1
            if b.category == _CAT[r.category]:
                c.right_category += 1
                pc.right_category += 1
            pairs.append((b, r))
        elif k in dont_of:
            pairs.append((b, dont_of[k]))
        else:
            c.false += 1
            pairs.append((b, None))
    return c, per_cat, pairs


@dataclass
class LabelCounts:
    given: dict[str, int] = field(default_factory=dict)  # labels reported at exactly this rank
    right: dict[str, int] = field(default_factory=dict)
    unverifiable: dict[str, int] = field(default_factory=dict)
    at_or_finer: dict[str, int] = field(default_factory=dict)  # coverage numerator
    right_at_or_finer: dict[str, int] = field(default_factory=dict)  # right labels at this rank or finer
    animal_boxes: int = 0  # found reference animal boxes (coverage denominator)
    coarse: dict[str, int] = field(default_factory=dict)  # kingdom "animal" / no label / human / vehicle
    cross_class: list[str] = field(default_factory=list)  # a taxon of the wrong taxonomic class (bird on elephant)
    wrong_category: list[str] = field(default_factory=list)  # human/vehicle on an animal, a taxon on a person


def label_verdict(label: str, truth: _T) -> tuple[str, bool | None]:
    """(rank, right) of an animal-taxon label string against the truth; right = None if unverifiable."""
    from sleuth.pipelines.taxonomy import parse_label

    lab = parse_label(label)
    rank = lab.rank
    if rank not in _FIELD:
        return rank, None
    depth = _FIELD[rank]
    for level in RANKS[::-1][: depth + 1]:  # class .. rank
        want = truth[_FIELD[level]]
        got = lab.taxa[_FIELD[level]]
        if want is None:
            if level == rank:
                return rank, None
            continue
        if got and got not in want:
            return rank, False
    return rank, True


def score_labels(item: Item, pairs: Sequence[tuple[Box, Ref | None]], lc: LabelCounts) -> None:
    from sleuth.pipelines.taxonomy import parse_label

    truth = TRUTH.get(item.label or "")
    for b, ref in pairs:
        if ref is None or not b.label:
            continue
        lab = parse_label(b.label)
        name = Path(item.path).name
        if ref.category != "animal":
            if lab.is_taxon and not lab.is_human and not lab.is_animal_kingdom:
                lc.wrong_category.append(f"{name}: {ref.category} box labelled {lab.common!r}")
            continue
        if not ref.care:
            continue
        lc.animal_boxes += 1
        if lab.is_human or lab.is_vehicle:
            lc.coarse["human/vehicle"] = lc.coarse.get("human/vehicle", 0) + 1
            lc.wrong_category.append(f"{name}: animal box labelled {lab.common!r}")
            continue
        if not lab.is_taxon or lab.is_animal_kingdom:
            key = "animal" if lab.is_animal_kingdom else (lab.rank or "none")
            lc.coarse[key] = lc.coarse.get(key, 0) + 1
            continue
        if truth is None:
            continue
        rank, right = label_verdict(b.label, truth)
        if truth[0] is not None and lab.taxa[0] and lab.taxa[0] not in truth[0]:
            lc.cross_class.append(f"{name}: {item.label} labelled {lab.common!r} ({lab.taxa[0]})")
        lc.given[rank] = lc.given.get(rank, 0) + 1
        if right is None:
            lc.unverifiable[rank] = lc.unverifiable.get(rank, 0) + 1
        elif right:
            lc.right[rank] = lc.right.get(rank, 0) + 1
        for r in RANKS[RANKS.index(rank) :]:
            lc.at_or_finer[r] = lc.at_or_finer.get(r, 0) + 1
            if right:
                lc.right_at_or_finer[r] = lc.right_at_or_finer.get(r, 0) + 1


# ------------------------------------------------------------------------------------------------
# running the service


def run_service(
    items: Sequence[Item], threshold: float, profile_name: str, *, detector_only: bool = False, **opts: Any
) -> list[list[Box]]:
    from sleuth.pipelines.wildlife import ImageOptions
    from sleuth.services import wildlife as svc

    profile = svc.resolve_profile(profile_name, detector_only)
    options = ImageOptions(threshold=threshold, **opts)
    out: list[list[Box]] = []
    for start in range(0, len(items), 10):  # batch-detect takes 1-10 images
        chunk = items[start : start + 10]
        outcomes = svc.run_images(
            [svc.ImageInput(Path(i.path).name, i.data) for i in chunk], options, profile, detector_only=detector_only
        )
        for o in outcomes:
            if o.error is not None:
                raise RuntimeError(f"{o.filename}: {o.error}")
            if detector_only:
                out.append([Box(list(d["bbox"]), float(d["score"]), int(d["category"])) for d in o.detections])
            else:
                out.append(
                    [
                        Box(list(a.bbox), float(a.score), int(a.category), a.label_string, a.source)
                        for a in o.annotations
                    ]
                )
    return out


@dataclass
class Report:
    per_set: dict[str, DetCounts]
    per_cat: dict[str, DetCounts]
    blank_false: int
    blank_images: int
    labels: LabelCounts


def evaluate(items: Sequence[Item], boxes: Sequence[Sequence[Box]]) -> Report:
    per_set: dict[str, DetCounts] = {}
    per_cat: dict[str, DetCounts] = {}
    blank_false = blank_images = 0
    lc = LabelCounts()
    for item, bs in zip(items, boxes, strict=True):
        if item.kind == "blank":
            c, _, _ = score_boxes(item, bs)
            blank_false += c.false
            blank_images += 1
            continue
        c, pc, pairs = score_boxes(item, bs)
        per_set.setdefault(item.set, DetCounts()).add(c)
        for k, v in pc.items():
            per_cat.setdefault(k, DetCounts()).add(v)
        score_labels(item, pairs, lc)
    return Report(per_set, per_cat, blank_false, blank_images, lc)


def repeat_rows(items: Sequence[Item], boxes: Sequence[Sequence[Box]]) -> list[str]:
    """Repeat detection elimination as ``sleuth detect`` applies it, each set's folder as one camera folder."""
    from sleuth.pipelines.wildlife.repeats import flag_repeats

    rows = [
        "| set folder | boxes flagged | of them false | of them true | recall, suppressed | false boxes, suppressed |"
    ]
    rows.append("|---|---|---|---|---|---|")
    for name in sorted({i.set for i in items}):
        idx = [k for k, i in enumerate(items) if i.set == name]
        flags = flag_repeats([[(b.bbox, b.score) for b in boxes[k]] for k in idx])
        false = true = 0
        kept: list[list[Box]] = []
        for k, fl in zip(idx, flags, strict=True):
            _, _, pairs = score_boxes(items[k], boxes[k])
            for (_b, r), f in zip(pairs, fl, strict=True):
                false += f and r is None
                true += f and r is not None
            kept.append([b for b, f in zip(boxes[k], fl, strict=True) if not f])
        rep = evaluate([items[k] for k in idx], kept)
        c = DetCounts()
        for v in rep.per_set.values():
            c.add(v)
        rows.append(
            f"| {name} | {false + true} | {false} | {true} | {_pct(c.found, c.refs)} | {c.false + rep.blank_false} |"
        )
    return rows


def recall_at_blank_false(
    items: Sequence[Item], boxes: Sequence[Sequence[Box]], ks: Sequence[int] = (0, 1, 2, 4)
) -> list[tuple[int, float, int, int, int]]:
    """Per k: (k, threshold, found, refs, false boxes on non-blank images) at the lowest threshold >= 0.01
    leaving at most k false boxes on the blanks."""
    blank_scores: list[float] = []
    for item, bs in zip(items, boxes, strict=True):
        if item.kind == "blank":
            _, _, pairs = score_boxes(item, bs)
            blank_scores += [b.score for b, r in pairs if r is None]
    blank_scores.sort(reverse=True)
    out = []
    for k in ks:
        thr = 0.01 if len(blank_scores) <= k else float(np.nextafter(blank_scores[k], 2.0))
        thr = max(thr, 0.01)
        rep = evaluate(items, [[b for b in bs if b.score >= thr] for bs in boxes])
        tot = DetCounts()
        for v in rep.per_set.values():
            tot.add(v)
        out.append((k, thr, tot.found, tot.refs, tot.false))
    return out


# ------------------------------------------------------------------------------------------------
# score calibration (fitted here, served from the catalog's score_map)


def _decoded(items: Sequence[Item]) -> list[Any]:
    from sleuth.services import wildlife as svc

    return [svc._decode(svc.ImageInput(Path(i.path).name, i.data)) for i in items]


def calibration_pairs(items: Sequence[Item], profile_name: str) -> list[tuple[float, float, float, str]]:
    """(raw detector score, MDv5a reference conf or 0, weight, scene) for every raw box of the primary
    detector on the ``speciesnet/`` images (their reference lists every MDv5a box down to 0.01). One-to-one
    matching at IoU >= 0.5, best raw score first; a scene's boxes weigh 1 / (images in the scene), so the
    five copies of the elephant frame count as one scene."""
    from sleuth.engine.registry import get_batcher
    from sleuth.services import wildlife as svc

    profile = svc.resolve_profile(profile_name)
    sn = [i for i in items if i.set == "speciesnet"]
    sizes: dict[str, int] = {}
    for i in sn:
        sizes[i.group] = sizes.get(i.group, 0) + 1
    results = get_batcher(profile.detector).run(_decoded(sn))
    pairs = []
    for item, res in zip(sn, results, strict=True):
        dets = list(res.detections)
        m = match([list(d.bbox) for d in dets], [d.conf for d in dets], [r.bbox for r in item.refs])
        for d, j in zip(dets, m, strict=True):
            target = 0.0 if j is None else _ref_conf(item, j)
            pairs.append((float(d.conf), target, 1.0 / sizes[item.group], item.group))
    return pairs


def _ref_conf(item: Item, j: int) -> float:
    man = _manifest_boxes()
    return float(man[item.path][j].get("conf") or 0.0)


_MAN: dict[str, list[dict[str, Any]]] = {}


def _manifest_boxes() -> dict[str, list[dict[str, Any]]]:
    if not _MAN:
        for r in json.loads((CT / "manifest.json").read_text())["images"]:
            _MAN[r["path"]] = r.get("boxes") or []
    return _MAN


def fit_score_map(pairs: Sequence[tuple[float, float, float, str]], fitted_on: str) -> Any:
    from sleuth.models.score_map import fit_isotonic

    return fit_isotonic(
        [p[0] for p in pairs], [p[1] for p in pairs], weights=[p[2] for p in pairs], fitted_on=fitted_on
    )


def loso_calibration(items: Sequence[Item], profile_name: str, threshold: float) -> list[str]:
    """Leave one speciesnet scene out: refit the map without it, score the held-out scene at ``threshold``."""
    from sleuth.services import wildlife as svc

    profile = svc.resolve_profile(profile_name, True)
    pairs = calibration_pairs(items, profile_name)
    full = fit_score_map(pairs, "all")
    groups = sorted({p[3] for p in pairs})
    rows = ["| held-out scene | refs | found, map without it | found, map with it | false boxes (without / with) |"]
    rows.append("|---|---|---|---|---|")
    tot = [0, 0, 0, 0, 0]
    for g in groups:
        held = [i for i in items if i.set == "speciesnet" and i.group == g]
        fold = fit_score_map([p for p in pairs if p[3] != g], f"without {g}")
        counts = []
        for smap in (fold, full):
            res = svc.detect_images(profile, _decoded(held), score_map=smap)
            boxes = [
                [Box(list(d.bbox), d.conf, int(d.category)) for d in r.detections if d.conf >= threshold] for r in res
            ]
            c = DetCounts()
            for item, bs in zip(held, boxes, strict=True):
                c.add(score_boxes(item, bs)[0])
            counts.append(c)
        a, b = counts
        rows.append(f"| {g} | {a.refs} | {a.found} | {b.found} | {a.false} / {b.false} |")
        for k, v in enumerate((a.refs, a.found, b.found, a.false, b.false)):
            tot[k] += v
    rows.append(f"| **all** | {tot[0]} | **{_pct(tot[1], tot[0])}** | {_pct(tot[2], tot[0])} | {tot[3]} / {tot[4]} |")
    return rows


def score_map_toml(smap: Any) -> str:
    xs = ", ".join(f"{v:g}" for v in smap.x)
    ys = ", ".join(f"{v:.3f}" for v in smap.y)
    return f'[model.score_map]\nx = [{xs}]\ny = [{ys}]\nfitted_on = "{smap.fitted_on}"'


# ------------------------------------------------------------------------------------------------
# label policy (per-rank cut-offs): chosen here, shipped as sleuth/data/label_policy/<pack>.toml

CUTOFF_GRID = (0.0, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.01)  # rules give classifier labels >= 0.65
TARGET_PRECISION = 0.9


class _CachedPack:
    """The profile's classifier pack, each crop classified once (the cut-off search re-runs the rules only)."""

    def __init__(self, pack: Any) -> None:
        self._pack = pack
        self._cache: dict[tuple[bytes, int], Any] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pack, name)

    def classify(self, crops: Sequence[Any], top_k: int = 5) -> list[Any]:
        import hashlib

        keys = [
            (hashlib.sha1(np.ascontiguousarray(c).tobytes() + str(c.shape).encode()).digest(), top_k) for c in crops
        ]
        todo = [i for i, k in enumerate(keys) if k not in self._cache]
        if todo:
            for i, res in zip(todo, self._pack.classify([crops[i] for i in todo], top_k), strict=True):
                self._cache[keys[i]] = res
        return [self._cache[k] for k in keys]


class LabelRunner:
    """Detection once, classification once; then the ensemble with any label policy."""

    def __init__(self, items: Sequence[Item], profile_name: str, threshold: float) -> None:
        from sleuth.services import wildlife as svc

        self.items = [i for i in items if i.kind != "blank"]
        self.profile = svc.resolve_profile(profile_name)
        self.threshold = threshold
        self.images = _decoded(self.items)
        self.results = svc.detect_images(self.profile, self.images)
        self.pack = _CachedPack(svc.classifier_pack(self.profile.classifier or "coral"))

    def boxes(self, policy: Any, keep: Sequence[Item] | None = None) -> tuple[list[Item], list[list[Box]]]:
        from sleuth.pipelines.wildlife import ImageOptions, run_pipeline

        idx = [k for k, i in enumerate(self.items) if keep is None or i in keep]
        anns = run_pipeline(
            [self.images[k] for k in idx],
            lambda _imgs: [self.results[k] for k in idx],
            None,
            self.pack,
            ImageOptions(threshold=self.threshold),
            label_policy=policy,
        )
        boxes = [
            [Box(list(a.bbox), float(a.score), int(a.category), a.label_string, a.source) for a in per] for per in anns
        ]
        return [self.items[k] for k in idx], boxes

    def labels(self, policy: Any, keep: Sequence[Item] | None = None) -> LabelCounts:
        items, boxes = self.boxes(policy, keep)
        return evaluate(items, boxes).labels


def _precision_ok(lc: LabelCounts, rank: str) -> bool | None:
    n = lc.given.get(rank, 0) - lc.unverifiable.get(rank, 0)
    if n <= 0:
        return None
    return lc.right.get(rank, 0) / n >= TARGET_PRECISION


def fit_cutoffs(runner: LabelRunner, base: Any, keep: Sequence[Item] | None = None) -> dict[str, float]:
    """Per rank, species first: the lowest grid cut-off giving >= 0.9 precision at that rank (the finer
    ranks' cut-offs fixed, the coarser ones open); 1.01 (never that rank) when no cut-off does, or when no
    label at that rank can be checked."""
    from sleuth.pipelines.wildlife.label_policy import RANKS as POLICY_RANKS

    cut = dict.fromkeys(POLICY_RANKS, 0.0)
    for rank in POLICY_RANKS:
        chosen = 1.01
        for c in CUTOFF_GRID:
            cut[rank] = c
            ok = _precision_ok(runner.labels(base.with_min_score(cut), keep), rank)
            if ok is None and c == 0.0:
                break  # no label at this rank can be checked at all: not supported
            if ok is None or ok:
                chosen = c
                break
        cut[rank] = chosen
    return cut


def _pack_policy(runner: LabelRunner) -> Any:
    from sleuth.pipelines.wildlife.label_policy import LabelPolicy, policy_named

    name = getattr(runner.pack, "label_policy", None)
    return policy_named(name) if isinstance(name, str) else name if isinstance(name, LabelPolicy) else None


def loso_cutoffs(runner: LabelRunner, base: Any) -> list[str]:
    """Leave one set out: fit the cut-offs on the other sets, score the labels of the held-out set."""
    from sleuth.pipelines.wildlife.label_policy import RANKS as POLICY_RANKS

    sets = sorted({i.set for i in runner.items})
    total = LabelCounts()
    rows = ["| held-out set | cut-offs fitted without it (species .. class) | labels right / checked on it |"]
    rows.append("|---|---|---|")
    for held in sets:
        train = [i for i in runner.items if i.set != held]
        test = [i for i in runner.items if i.set == held]
        cut = fit_cutoffs(runner, base, train)
        lc = runner.labels(base.with_min_score(cut), test)
        right = sum(lc.right.values())
        checked = sum(lc.given.values()) - sum(lc.unverifiable.values())
        cuts = ", ".join(f"{cut[r]:g}" for r in POLICY_RANKS)
        rows.append(f"| {held} | {cuts} | {_pct(right, checked)} |")
        for k in ("given", "right", "unverifiable", "at_or_finer", "right_at_or_finer"):
            d = getattr(total, k)
            for r, v in getattr(lc, k).items():
                d[r] = d.get(r, 0) + v
        total.animal_boxes += lc.animal_boxes
        total.cross_class += lc.cross_class
        total.wrong_category += lc.wrong_category
    rows += ["", "Pooled over the three held-out sets:", ""]
    rows += _rank_rows(total)
    return rows


# ------------------------------------------------------------------------------------------------
# printing


def _pct(n: int, d: int) -> str:
    return f"{n}/{d} = {n / d:.3f}" if d else "-"


def _rank_rows(lc: LabelCounts) -> list[str]:
    lines = [
        "| rank | coverage (this rank or finer) | right labels, this rank or finer | labels at this rank | right "
        "| unverifiable | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in RANKS:
        g, ok, un = lc.given.get(r, 0), lc.right.get(r, 0), lc.unverifiable.get(r, 0)
        cov = _pct(lc.at_or_finer.get(r, 0), lc.animal_boxes)
        rcov = _pct(lc.right_at_or_finer.get(r, 0), lc.animal_boxes)
        lines.append(f"| {r} | {cov} | {rcov} | {g} | {ok} | {un} | {_pct(ok, g - un)} |")
    return lines


def format_report(rep: Report, threshold: float, title: str) -> list[str]:
    lines = [f"### {title}", "", f"Detection at threshold {threshold} (IoU >= {IOU})", ""]
    lines += ["| set | images | recall | right category | false boxes | precision |", "|---|---|---|---|---|---|"]
    tot = DetCounts()
    for name in sorted(rep.per_set):
        c = rep.per_set[name]
        tot.add(c)
        lines.append(
            f"| {name} | {c.images} | {_pct(c.found, c.refs)} | {c.right_category} | {c.false} "
            f"| {_pct(c.found, c.found + c.false)} |"
        )
    lines.append(
        f"| **all** | {tot.images} | **{_pct(tot.found, tot.refs)}** | {tot.right_category} | {tot.false} "
        f"| {_pct(tot.found, tot.found + tot.false)} |"
    )
    lines.append(f"| blanks | {rep.blank_images} | - | - | **{rep.blank_false}** | - |")
    lines += ["", "| category | refs | found | right category |", "|---|---|---|---|"]
    for name in ("animal", "person", "vehicle"):
        c = rep.per_cat.get(name, DetCounts())
        lines.append(f"| {name} | {c.refs} | {_pct(c.found, c.refs)} | {_pct(c.right_category, c.refs)} |")
    lc = rep.labels
    lines += ["", f"Labels on the {lc.animal_boxes} found animal boxes", ""]
    lines += _rank_rows(lc)
    coarse = ", ".join(f"{k} {v}" for k, v in sorted(lc.coarse.items())) or "none"
    lines.append(f"| coarser | {coarse} | | | | | |")
    lines += [
        "",
        f"Cross-class labels (a taxon of another taxonomic class than the truth's): **{len(lc.cross_class)}**",
    ]
    lines += [f"- {x}" for x in lc.cross_class[:20]]
    if len(lc.cross_class) > 20:
        lines.append(f"- ... {len(lc.cross_class) - 20} more")
    lines += [
        "",
        f"Wrong category (human/vehicle on an animal box, an animal taxon on a person/vehicle box): "
        f"**{len(lc.wrong_category)}**",
    ]
    lines += [f"- {x}" for x in lc.wrong_category[:20]]
    return lines


def report_json(rep: Report) -> dict[str, Any]:
    return {
        "per_set": {k: vars(v) for k, v in rep.per_set.items()},
        "per_category": {k: vars(v) for k, v in rep.per_cat.items()},
        "blank_false": rep.blank_false,
        "labels": vars(rep.labels),
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threshold", type=float, default=0.2)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--sets", nargs="*", help="only these sets (speciesnet, animl_southwest, pw_ft_squirrels)")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON")
    ap.add_argument("--no-curve", action="store_true", help="skip the recall-at-equal-false-boxes run")
    ap.add_argument("--verbose", "-v", action="store_true", help="also list every annotation")
    ap.add_argument(
        "--fit-score-map",
        action="store_true",
        help="fit the primary detector's score map on the speciesnet set's MDv5a confidences and print it (TOML)",
    )
    ap.add_argument(
        "--fit-label-policy",
        action="store_true",
        help="choose the classifier pack's per-rank cut-offs on the whole set and print them (TOML)",
    )
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-out refits")
    args = ap.parse_args(argv)
    if not CT.is_dir():
        print(f"no shared data at {CT}", file=sys.stderr)
        return 2
    items = load_items(args.sets)
    t0 = time.perf_counter()
    if args.fit_score_map:
        from sleuth.services import wildlife as svc

        det = svc.resolve_profile(args.profile).detector
        pairs = calibration_pairs(items, args.profile)
        smap = fit_score_map(
            pairs,
            f"{det}: isotonic fit of MDv5a reference conf on raw scores, {len(pairs)} boxes of the shared "
            "speciesnet/ images (benchmarks/accuracy.py --fit-score-map)",
        )
        print(score_map_toml(smap))
        return 0
    if args.fit_label_policy:
        runner = LabelRunner(items, args.profile, args.threshold)
        base = _pack_policy(runner)
        cut = fit_cutoffs(runner, base)
        print("[min_score]")
        print("\n".join(f"{r} = {v:g}" for r, v in cut.items()))
        return 0
    boxes = run_service(items, args.threshold, args.profile)
    rep = evaluate(items, boxes)
    lines = format_report(rep, args.threshold, f"profile {args.profile}")
    if args.verbose:
        lines += ["", "Every annotation: image | truth | matched reference | score | label (source)", ""]
        for item, bs in zip(items, boxes, strict=True):
            _, _, pairs = score_boxes(item, bs)
            for b, r in pairs:
                ref = "false" if r is None else (r.category if r.care else "don't care")
                name = b.label.split(";")[-1] if b.label else "-"
                lines.append(f"- {Path(item.path).name} | {item.label} | {ref} | {b.score:.3f} | {name} ({b.source})")
    out: dict[str, Any] = {"threshold": args.threshold, "profile": args.profile, "report": report_json(rep)}
    lines += [
        "",
        "Repeat detections (`sleuth detect`'s rule, each set's folder one camera folder; flagged by default)",
        "",
    ]
    lines += repeat_rows(items, boxes)
    if not args.no_curve:
        det = run_service(items, 0.01, args.profile, detector_only=True)
        curve = recall_at_blank_false(items, det)
        lines += ["", "Recall at an equal number of false boxes on the blanks (detector boxes, `/v1/batch-filter`)", ""]
        lines += ["| false boxes on blanks <= | threshold | recall | false boxes elsewhere |", "|---|---|---|---|"]
        for k, thr, found, refs, false in curve:
            lines.append(f"| {k} | {thr:.3f} | {_pct(found, refs)} | {false} |")
        out["curve"] = curve
    if not args.no_loso and any(i.set == "speciesnet" for i in items):
        lines += ["", f"Score map, leave one speciesnet scene out (detector boxes at {args.threshold})", ""]
        lines += loso_calibration(items, args.profile, args.threshold)
    if not args.no_loso and len({i.set for i in items}) > 1:
        runner = LabelRunner(items, args.profile, args.threshold)
        base = _pack_policy(runner)
        if base is not None:
            lines += ["", "Label cut-offs, leave one set out (labels on the found animal boxes)", ""]
            lines += loso_cutoffs(runner, base)
    lines += ["", f"({len(items)} images, {time.perf_counter() - t0:.0f} s)"]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
