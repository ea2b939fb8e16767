"""SpeciesNet's ensemble rules applied per box: detector + classifier top-k + geofence + roll-up."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from sleuth.pipelines.taxonomy import ANIMAL, HUMAN, VEHICLE, Label, Taxonomy, common_name, parse_label, taxonomy_dict
from sleuth.pipelines.wildlife.data import (
    _COARSE,
    _COARSE_NAME,
    CATEGORY_ANIMAL,
    CATEGORY_PERSON,
    CATEGORY_VEHICLE,
    Annotation,
    Candidate,
    Detection,
    ImageOptions,
)
from sleuth.pipelines.wildlife.geofence import Geofence, GeofenceRules, _as_geofence
from sleuth.pipelines.wildlife.label_policy import LabelPolicy

# SpeciesNet ensemble thresholds (ensemble_prediction_combiner.py).
HUMAN_DET_HIGH = 0.7  # 1a
DET_MID = 0.2  # 1b, 2a, 2c, 3a, 4b
CLS_HUMAN = 0.5  # 1b, 2a
VEHICLE_DET_HIGH = 0.7  # 2b
CLS_VEHICLE = 0.4  # 2c
CLS_BLANK = 0.5  # 3a
CLS_BLANK_HIGH = 0.99  # 3b
CLS_ANIMAL_HIGH = 0.8  # 4a
CLS_ANIMAL_MID = 0.65  # 4b
ROLLUP_THRESHOLD = 0.65  # 5a (non_blank_threshold)
ANIMAL_DET = 0.5  # 5b
RULES_TOP_K = 5  # SpeciesNet keeps the top 5 classes; rules and roll-ups use only these
CANDIDATE_POOL = 25  # classifier classes read for top_candidate (several may name one taxon)


def classes_wanted(top_candidate: int | None) -> int:
    """How many ranked classes to ask the classifier for: the rules' 5, more when candidates are asked."""
    return RULES_TOP_K if not top_candidate else min(CANDIDATE_POOL, max(RULES_TOP_K, 2 * top_candidate + 5))


ROLLUP_LEVELS = ("genus", "family", "order", "class", "kingdom")
GEOFENCE_ROLLUP_LEVELS = ("family", "order", "class", "kingdom")


@dataclass
class _Context:
    taxonomy: Taxonomy
    geofence: Geofence | None
    country: str | None
    admin1: str | None

    def blocked(self, label: Label) -> bool:
        return self.geofence is not None and self.geofence.is_blocked(label, self.country, self.admin1)


Prediction = tuple[Label, float, str]


def _parse_classes(raw: Sequence[tuple[str, float]] | None) -> list[tuple[Label, float]]:
    out: list[tuple[Label, float]] = []
    for item in raw or ():
        if len(item) != 2:
            raise ValueError(f"a classification must be (label, score), got {item!r}")
        text, score = item
        s = float(score)
        if not math.isfinite(s):
            raise ValueError(f"classification score must be finite, got {score!r} for {text!r}")
        out.append((parse_label(text), s))
    out.sort(key=lambda ls: -ls[1])  # stable: ties keep the classifier's order
    return out


def _rollup(
    classes: list[tuple[Label, float]], levels: Sequence[str], threshold: float, ctx: _Context
) -> Prediction | None:
    """SpeciesNet roll-up: per level, sum scores of labels sharing an ancestor; the best ancestor that is
    not geofenced wins if its sum passes ``threshold``."""
    for level in levels:
        sums: dict[str, float] = {}
        by_fcs: dict[str, Label] = {}
        for lab, score in classes:
            anc = ctx.taxonomy.ancestor(lab, level)
            if anc is None:
                continue
            key = anc.full_class_string
            sums[key] = sums.get(key, 0.0) + score
            by_fcs.setdefault(key, anc)
        best: Label | None = None
        best_score = 0.0
        for key, total in sums.items():
            if total > best_score and not ctx.blocked(by_fcs[key]):
                best, best_score = by_fcs[key], total
        if best is not None and best_score > threshold:
            return best, best_score, f"classifier+rollup_to_{level}"
    return None


def _geofence_top(classes: list[tuple[Label, float]], ctx: _Context) -> Prediction | None:
    top, score = classes[0]
    if not ctx.blocked(top):
        return top, score, "classifier"
    rolled = _rollup(classes, GEOFENCE_ROLLUP_LEVELS, score - 1e-10, ctx)
    if rolled is None:
        return None
    label, total, source = rolled
    return label, total, "classifier+geofence+" + source[len("classifier+") :]


def _combine_box(det: Detection, classes: list[tuple[Label, float]], ctx: _Context) -> Prediction | None:
    """SpeciesNet's rules for one box. Returns None when the box is blank (dropped)."""
    conf, cat = det.conf, det.category
    top: Label | None = classes[0][0] if classes else None
    ts = classes[0][1] if classes else 0.0
    human = top is not None and top.is_human
    vehicle = top is not None and top.is_vehicle
    blank = top is not None and top.is_blank

    if cat == CATEGORY_PERSON:
        if conf > HUMAN_DET_HIGH:  # 1a
            return parse_label(HUMAN), conf, "detector"
        if conf > DET_MID and (human or vehicle) and ts > CLS_HUMAN:  # 1b
            return parse_label(HUMAN), ts, "classifier"
    if cat == CATEGORY_VEHICLE:
        if conf > DET_MID and human and ts > CLS_HUMAN:  # 2a
            return parse_label(HUMAN), ts, "classifier"
        if conf > VEHICLE_DET_HIGH:  # 2b
            return parse_label(VEHICLE), conf, "detector"
        if conf > DET_MID and vehicle and ts > CLS_VEHICLE:  # 2c
            return parse_label(VEHICLE), ts, "classifier"
    # adaptation A1: a box of an animal-only detector that the classifier calls human/vehicle
    if cat == CATEGORY_ANIMAL:
        if conf > DET_MID and human and ts > CLS_HUMAN:
            return parse_label(HUMAN), ts, "classifier"
        if conf > DET_MID and vehicle and ts > CLS_VEHICLE:
            return parse_label(VEHICLE), ts, "classifier"

    if blank and ((conf < DET_MID and ts > CLS_BLANK) or ts > CLS_BLANK_HIGH):  # 3a, 3b
        return None
    animal_top = top is not None and top.is_taxon and not top.is_human
    # 4a: very confident animal classification; 4b: confident classification of an animal box
    if animal_top and (ts > CLS_ANIMAL_HIGH or (ts > CLS_ANIMAL_MID and cat == CATEGORY_ANIMAL and conf > DET_MID)):
        pred = _geofence_top(classes, ctx)
        if pred is not None:
            return pred
    rolled = _rollup(classes, ROLLUP_LEVELS, ROLLUP_THRESHOLD, ctx)  # 5a
    if rolled is not None:
        return rolled
    if cat == CATEGORY_ANIMAL and conf > ANIMAL_DET:  # 5b
        return parse_label(ANIMAL), conf, "detector"
    # adaptation A3: SpeciesNet would answer "unknown"; a box over threshold keeps its detector label
    return parse_label(_COARSE[cat]), conf, "detector_fallback"


def _candidates(classes: list[tuple[Label, float]], chosen: Label, n: int, ctx: _Context) -> list[Candidate]:
    """Up to ``n`` ranked alternatives to ``chosen``: the classifier's other taxa, one entry per taxon at its
    best score (a stand-in classifier maps several of its classes onto one taxon), none the geofence blocks.
    The pipeline reads :func:`classes_wanted` classes, so any classifier with enough labels gives ``n``."""
    out: list[Candidate] = []
    seen = {chosen.full_class_string}
    for lab, score in classes:
        if len(out) >= n:
            break
        if not (lab.is_taxon or lab.is_vehicle) or lab.full_class_string in seen:
            continue
        if lab.is_vehicle and chosen.is_vehicle:
            continue
        if ctx.blocked(lab):
            continue
        seen.add(lab.full_class_string)
        out.append(Candidate(common_name(lab), score, taxonomy_dict(lab), lab.string))
    return out


def _smooth_herd(anns: list[Annotation], taxonomy: Taxonomy, threshold: float) -> None:
    """Broad animal labels (genus .. order) take the most precise label found in the same image that lies
    below them in the taxonomy, from a box of the same detector category whose label has the same class and
    order and whose score is at least the recipient's (donors must pass the threshold themselves)."""
    labels = [parse_label(a.label_string) for a in anns]
    donors = [
        (lab, a)
        for lab, a in zip(labels, anns, strict=True)
        if lab.is_taxon and not lab.is_human and a.score >= threshold
    ]
    order = {"species": 0, "genus": 1, "family": 2, "order": 3, "class": 4, "kingdom": 5}
    for lab, ann in zip(labels, anns, strict=True):
        if not lab.is_taxon or lab.is_human or lab.rank in ("species",) or not lab.taxa[1]:
            continue  # a class-level (or "animal") label names no order: nothing to match a donor on
        fits = [
            (d, da)
            for d, da in donors
            if taxonomy.is_descendant(d, lab)
            and d.taxa[:2] == lab.taxa[:2]
            and da.category == ann.category
            and da.score >= ann.score
        ]
        if not fits:
            continue
        counts: dict[str, int] = {}
        best_score: dict[str, float] = {}
        pick: dict[str, Label] = {}
        for d, da in fits:
            counts[d.full_class_string] = counts.get(d.full_class_string, 0) + 1
            best_score[d.full_class_string] = max(best_score.get(d.full_class_string, 0.0), da.score)
            pick.setdefault(d.full_class_string, d)
        key = min(pick, key=lambda k: (order[pick[k].rank], -counts[k], -best_score[k], k))
        new = pick[key]
        ann.label, ann.taxonomy, ann.label_string = common_name(new), taxonomy_dict(new), new.string
        ann.source += "+smooth_herd"


def ensemble_image(
    detections: Sequence[Detection],
    classifications_per_box: Sequence[Sequence[tuple[str, float]] | None],
    options: ImageOptions,
    geofence: Geofence | GeofenceRules | None = None,
    taxonomy: Taxonomy | None = None,
    policy: LabelPolicy | None = None,
) -> list[Annotation]:
    """Annotations for one image.

    ``classifications_per_box[i]`` is box ``i``'s classifier top-k as ``(label_string, score)`` pairs (any
    order; None or empty when not classified). Only boxes whose detector confidence reaches
    ``options.threshold`` are considered; each gets the SpeciesNet rules; blank boxes are dropped; the
    result keeps annotations whose final score reaches the threshold, sorted by score (ids 0..n-1).
    ``taxonomy`` supplies roll-up labels (defaults to one built from the labels seen here). ``policy``: the
    classifier pack's label policy (cross-class exclusions before the rules, per-rank cut-offs after them).
    """
    if len(classifications_per_box) not in (0, len(detections)):
        raise ValueError(f"got {len(classifications_per_box)} classification lists for {len(detections)} detections")
    detections = [Detection.coerce(d) for d in detections]
    gf = _as_geofence(geofence)
    per_box = [
        _parse_classes(classifications_per_box[i] if classifications_per_box else None) for i in range(len(detections))
    ]
    if taxonomy is None:
        taxonomy = Taxonomy(lab.string for classes in per_box for lab, _ in classes)
    ctx = _Context(taxonomy, gf, options.country if options.classify else None, options.admin1)

    anns: list[Annotation] = []
    for det, classes in zip(detections, per_box, strict=True):
        if det.conf < options.threshold:
            continue
        if not options.classify:
            coarse = parse_label(_COARSE[det.category])
            anns.append(
                Annotation(
                    id=0,
                    bbox=list(det.bbox),
                    score=det.conf,
                    label=_COARSE_NAME[det.category],
                    taxonomy=taxonomy_dict(coarse),
                    label_string=coarse.string,
                    source="detector",
                    category=det.category,
                    detection_conf=det.conf,
                )
            )
            continue
        if policy is not None:
            classes = policy.allowed(classes, det.category, det.hint)
        pred = _combine_box(det, classes[:RULES_TOP_K], ctx)
        if pred is None:
            continue
        if policy is not None:
            pred = policy.settle(pred, classes[:RULES_TOP_K], ctx.taxonomy, det.conf)
        label, score, source = pred
        cands = None
        if options.top_candidate is not None:
            cands = _candidates(classes, label, options.top_candidate, ctx)
        anns.append(
            Annotation(
                id=0,
                bbox=list(det.bbox),
                score=float(score),
                label=common_name(label),
                taxonomy=taxonomy_dict(label),
                top_candidates=cands,
                label_string=label.string,
                source=source,
                category=det.category,
                detection_conf=det.conf,
            )
        )
    if options.classify and options.smooth_herd:
        _smooth_herd(anns, taxonomy, options.threshold)
    anns = [a for a in anns if a.score >= options.threshold]
    anns.sort(key=lambda a: -a.score)
    for i, a in enumerate(anns):
        a.id = i
    return anns
