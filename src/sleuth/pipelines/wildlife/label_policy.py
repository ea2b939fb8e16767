"""A classifier pack's label policy: the ranks it may name, at what score, and the labels a box may never get.

SpeciesNet's ensemble rules (``ensemble.py``) pick a label per box. A weaker classifier (the Coral stand-in)
is often wrong below class, so its pack names a policy (``pack.label_policy = "coral"``), shipped as data
(``sleuth/data/label_policy/<name>.toml``), applied to every box by two small functions:

* :meth:`LabelPolicy.allowed` -- before the rules: a box the detector calls a person or vehicle, or whose
  relabeler box (YOLOX-nano COCO) calls it a mammal, person or vehicle (``Detection.hint``), never gets a
  label of a taxonomic class the policy excludes for that hint (a bird on an elephant); those candidates are
  removed from the box's classifier list.
* :meth:`LabelPolicy.settle` -- after the rules: a label is kept at its rank only when its score reaches
  that rank's ``min_score``; otherwise it rolls up, SpeciesNet style (the summed score of the box's
  candidates under the ancestor), to the first rank whose cut-off it reaches, or to the detector's "animal".
  With ``rank_names``, a label coarser than species is named after its taxon (``canis species``,
  ``mammalia class``), not after the classifier's leaf class (a WordNet "white wolf" whose taxonomy says
  only genus *Canis*; "tusker", which says only class *Mammalia*).

The cut-offs are chosen from the measurement (``benchmarks/accuracy.py --fit-label-policy``; how, in
docs/accuracy.md). Packs without a policy (SpeciesNet) are labelled by the rules alone.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sleuth.pipelines.taxonomy import ANIMAL, Label, Taxonomy, parse_label

__all__ = ["HINTS", "POLICY_DIR", "RANKS", "LabelPolicy", "box_hint", "load_label_policy", "policy_named"]

RANKS: tuple[str, ...] = ("species", "genus", "family", "order", "class")
HINTS = ("mammal", "bird", "person", "vehicle")  # what a detector box may say about its object
POLICY_DIR = Path(__file__).resolve().parents[2] / "data" / "label_policy"

Prediction = tuple[Label, float, str]


def box_hint(category: int, hint: str | None) -> str | None:
    """The box's coarse class: the detector's person/vehicle category wins, else the relabeler's hint."""
    if category == 2:
        return "person"
    if category == 3:
        return "vehicle"
    return hint


@dataclass(frozen=True)
class LabelPolicy:
    """Per-rank score cut-offs, per-hint excluded taxonomic classes, and whether labels take their rank's name."""

    min_score: Mapping[str, float] = field(default_factory=dict)  # rank -> cut-off (missing: no cut-off)
    never: Mapping[str, frozenset[str]] = field(default_factory=dict)  # hint -> taxonomic classes never given
    rank_names: bool = False
    fitted_on: str = ""

    def __post_init__(self) -> None:
        for rank, v in self.min_score.items():
            if rank not in RANKS:
                raise ValueError(f"label policy: min_score has an unknown rank {rank!r} (expected {RANKS})")
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.01:
                raise ValueError(f"label policy: min_score.{rank} must be a number in [0, 1.01], got {v!r}")
        for hint in self.never:
            if hint not in HINTS:
                raise ValueError(f"label policy: never has an unknown hint {hint!r} (expected {HINTS})")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], where: str = "label policy") -> LabelPolicy:
        unknown = set(raw) - {"min_score", "never", "rank_names", "fitted_on"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        never_raw = raw.get("never") or {}
        if not isinstance(never_raw, Mapping) or not all(
            isinstance(v, list) and all(isinstance(c, str) for c in v) for v in never_raw.values()
        ):
            raise ValueError(f"{where}: never must map a hint to a list of taxonomic class names")
        min_raw = raw.get("min_score") or {}
        if not isinstance(min_raw, Mapping):
            raise ValueError(f"{where}: min_score must be a table of rank = cut-off")
        try:
            return cls(
                min_score={str(k): float(v) if not isinstance(v, bool) else v for k, v in min_raw.items()},
                never={str(k): frozenset(c.lower() for c in v) for k, v in never_raw.items()},
                rank_names=bool(raw.get("rank_names", False)),
                fitted_on=str(raw.get("fitted_on", "")),
            )
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}: {e}") from None

    def with_min_score(self, min_score: Mapping[str, float]) -> LabelPolicy:
        return LabelPolicy(dict(min_score), self.never, self.rank_names, self.fitted_on)

    # -- before the rules ---------------------------------------------------------------------
    def allowed(
        self, classes: Sequence[tuple[Label, float]], category: int, hint: str | None
    ) -> list[tuple[Label, float]]:
        """The box's candidates without the taxonomic classes its hint excludes."""
        banned = self.never.get(box_hint(category, hint) or "", frozenset())
        if not banned:
            return list(classes)
        return [(lab, s) for lab, s in classes if not (lab.is_taxon and lab.taxa[0] in banned)]

    # -- after the rules ----------------------------------------------------------------------
    def chain(
        self, pred: Prediction, classes: Sequence[tuple[Label, float]], taxonomy: Taxonomy
    ) -> list[tuple[str, Label, float]]:
        """(rank, label, score) from the prediction's own rank up to class: at each rank above it, the summed
        score of the box's candidates under that ancestor (at least the prediction's own score)."""
        label, score, _ = pred
        own = label.rank
        if own not in RANKS:
            return []
        out = [(own, label, float(score))]
        for rank in RANKS[RANKS.index(own) + 1 :]:
            anc = taxonomy.ancestor(label, rank)
            if anc is None:
                continue  # the label names no taxon at this rank (e.g. an iNat bird without an order)
            key = anc.full_class_string
            total = sum(
                s
                for lab, s in classes
                if (a := taxonomy.ancestor(lab, rank)) is not None and a.full_class_string == key
            )
            out.append((rank, anc, max(float(score), total)))
        return out

    def settle(
        self,
        pred: Prediction,
        classes: Sequence[tuple[Label, float]],
        taxonomy: Taxonomy,
        detection_conf: float,
    ) -> Prediction:
        """The label at the finest rank whose cut-off it reaches (rolled up, renamed); detector labels,
        human, vehicle and "animal" pass unchanged."""
        label, _, source = pred
        if not source.startswith("classifier") or not label.is_taxon or label.is_human or label.is_animal_kingdom:
            return pred
        for rank, lab, score in self.chain(pred, classes, taxonomy):
            if score >= self.min_score.get(rank, 0.0):
                if self.rank_names and rank != "species":
                    lab = taxonomy.lookup(lab.taxa)
                tag = "" if rank == label.rank else f"+min_score_rollup_to_{rank}"
                return lab, score, source + tag
        return parse_label(ANIMAL), float(detection_conf), "detector+min_score"


def load_label_policy(name: str, directory: Path | None = None) -> LabelPolicy:
    """The policy file ``<name>.toml`` of a pack (ValueError naming the file when malformed)."""
    path = (directory or POLICY_DIR) / f"{name}.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path}: cannot read the label policy: {e}") from None
    return LabelPolicy.from_dict(raw, str(path))


@functools.lru_cache(maxsize=16)
def policy_named(name: str) -> LabelPolicy:
    """The packaged policy ``name`` (read once per process)."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"bad label policy name {name!r}")
    return load_label_policy(name)
