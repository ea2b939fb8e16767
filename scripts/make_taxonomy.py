#!/usr/bin/env python3
"""Build the taxonomy files for the Coral classifier pack from WordNet 3.0.

Writes ``src/sleuth/data/taxonomy/coral-imagenet.json`` and ``coral-inat-birds.json``:
for every model output index, a SpeciesNet-format label string
``"<uuid>;<class>;<order>;<family>;<genus>;<species>;<common name>"`` plus the kind
(animal / human / vehicle / object / background) and the WordNet synset used.

Source: Princeton WordNet 3.0 as packaged by Debian (``apt-get install wordnet-base``;
files under /usr/share/wordnet). Its data files are parsed here directly (no nltk).

How a label is mapped
---------------------
ImageNet (1001 lines, line 0 = background). ILSVRC class names are WordNet 3.0 noun
synsets: the label line is the synset's lemma list and the classes are in increasing
WordNet offset order, so each line is matched to the synset with exactly that lemma list
whose offset is the smallest one above the previous line's (this resolves the two
"crane" and two "maillot" lines). Then:

* kind: ``human`` if the synset's hypernym closure contains person.n.01 (00007846),
  ``vehicle`` if it contains vehicle.n.01 (04524313), ``animal`` if it contains
  animal.n.01 (00015388), otherwise ``object``;
* animals: class/order/family/genus are the nearest synsets named "class X",
  "order X", "family X", "genus X" reached by a breadth-first walk over hypernyms
  (@, @i) and member holonyms (#m) -- WordNet's way of saying "cat is a member of genus
  Felis, which is a member of family Felidae". The species epithet is taken from the
  nearest synset on the hypernym chain carrying a binomial lemma "<Genus> <epithet>"
  whose genus is the one found (e.g. "dog, domestic dog, Canis familiaris").
  Ranks WordNet does not give stay empty.
* human -> SpeciesNet's HUMAN string, vehicle -> SpeciesNet's VEHICLE string,
  objects -> ``<uuid>;;;;;;<common name>`` with kind ``object`` (never a species).

iNat birds (965 lines, last = background): "Genus species [subspecies] (Common Name)".
Genus and species come from the label itself (subspecies dropped, hybrids "A b x c" keep
only the genus; the file spells the hybrid sign as the escape text "\\xd7"); class is
``aves`` (the model is a bird model and WordNet puts every bird genus in class Aves);
order and family come from WordNet when "genus <Genus>" is a WordNet synset, else they
stay empty.

The background class of both models maps to SpeciesNet's BLANK string (kind
``background``).

IDs: SpeciesNet uses its own UUIDs, which we do not have. Except for the SpeciesNet
constants (blank, human, vehicle), ``id = uuid5(SLEUTH_TAXONOMY_NS, six_field_string)``
where ``six_field_string = "class;order;family;genus;species;common name"`` and
``SLEUTH_TAXONOMY_NS = uuid5(NAMESPACE_DNS, "taxonomy.sleuth")``. Equal taxa from
the two heads therefore share an id.

Usage (from the repo root)::

    python scripts/make_taxonomy.py [--wordnet /usr/share/wordnet]
        [--labels ../shared/data/models/coral] [--out src/sleuth/data/taxonomy]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import uuid
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SLEUTH_TAXONOMY_NS = uuid.uuid5(uuid.NAMESPACE_DNS, "taxonomy.sleuth")

# SpeciesNet constants (google/cameratrapai speciesnet/constants.py).
BLANK = "f1856211-cfb7-4a5b-9158-c0f72fd09ee6;;;;;;blank"
HUMAN = "990ae9dd-7a59-4344-afcb-1b7b21368000;mammalia;primates;hominidae;homo;sapiens;human"
VEHICLE = "e2895ed5-780b-48f6-8a11-9e27cb594511;;;;;;vehicle"

PERSON_SYNSET = 7846  # person, individual, someone, somebody, mortal, soul
VEHICLE_SYNSET = 4524313  # vehicle: a conveyance that transports people or objects
ANIMAL_SYNSET = 15388  # animal, animate being, beast, brute, creature, fauna

RANKS = ("class", "order", "family", "genus")


class WordNet:
    """The noun part of WordNet 3.0, parsed from data.noun."""

    def __init__(self, folder: Path) -> None:
        self.lemmas: dict[int, list[str]] = {}
        self.hypernyms: dict[int, list[int]] = {}
        self.member_holonyms: dict[int, list[int]] = {}
        self.by_lemma: dict[str, list[int]] = {}
        data = (folder / "data.noun").read_bytes()
        self.data_sha256 = hashlib.sha256(data).hexdigest()
        for raw in data.decode("utf-8").splitlines():
            if raw.startswith("  "):  # licence header
                continue
            head = raw.split(" | ", 1)[0].split()
            offset = int(head[0])
            w_cnt = int(head[3], 16)
            words = [head[4 + 2 * i] for i in range(w_cnt)]
            pos = 4 + 2 * w_cnt
            p_cnt = int(head[pos])
            hyp: list[int] = []
            mem: list[int] = []
            for j in range(p_cnt):
                sym, target, tpos = head[pos + 1 + 4 * j : pos + 4 + 4 * j]
                if tpos != "n":
                    continue
                if sym in ("@", "@i"):
                    hyp.append(int(target))
                elif sym == "#m":
                    mem.append(int(target))
            self.lemmas[offset] = [re.sub(r"\(.*\)$", "", w) for w in words]  # drop (a)/(p) markers
            self.hypernyms[offset] = hyp
            self.member_holonyms[offset] = mem
            for w in self.lemmas[offset]:
                self.by_lemma.setdefault(w.lower(), []).append(offset)

    def ancestors(self, offset: int) -> list[int]:
        """The synset and its hypernym closure, nearest first."""
        seen = [offset]
        queue = deque([offset])
        while queue:
            cur = queue.popleft()
            for h in self.hypernyms[cur]:
                if h not in seen:
                    seen.append(h)
                    queue.append(h)
        return seen

    def rank_name(self, offset: int) -> tuple[str, str] | None:
        """("family", "felidae") for a synset with lemma "family_Felidae", else None."""
        for w in self.lemmas[offset]:
            parts = w.split("_")
            if len(parts) == 2 and parts[0] in RANKS:
                return parts[0], parts[1].lower()
        return None

    def taxon_ranks(self, start: list[int]) -> dict[str, str]:
        """Nearest class/order/family/genus over hypernym + member-holonym edges."""
        found: dict[str, str] = {}
        seen = set(start)
        queue = deque(start)
        while queue and len(found) < len(RANKS):
            cur = queue.popleft()
            rn = self.rank_name(cur)
            if rn and rn[0] not in found:
                found[rn[0]] = rn[1]
            for nxt in self.hypernyms[cur] + self.member_holonyms[cur]:
                if nxt not in seen:
                    seen.add(nxt)
                    queue.append(nxt)
        return found


def _read_lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_bytes().splitlines():
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            line = raw.decode("latin-1")
        out.append(line.strip())
    return out


def _label(cls: str, order: str, family: str, genus: str, species: str, common: str) -> str:
    six = ";".join([cls, order, family, genus, species, common])
    return f"{uuid.uuid5(SLEUTH_TAXONOMY_NS, six)};{six}"


def _wordnet_version() -> str:
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "wordnet-base"], capture_output=True, text=True, check=True
        ).stdout.strip()
        return f"wordnet-base {out} (Princeton WordNet 3.0)"
    except (OSError, subprocess.CalledProcessError):
        return "Princeton WordNet 3.0 (package version unknown)"


def _summary(entries: list[dict[str, object]]) -> tuple[dict[str, int], dict[str, int]]:
    kinds: dict[str, int] = {}
    ranks = {r: 0 for r in ("class", "order", "family", "genus", "species")}
    for e in entries:
        kinds[str(e["kind"])] = kinds.get(str(e["kind"]), 0) + 1
        if e["kind"] == "animal":
            fields = str(e["label"]).split(";")
            for r, v in zip(("class", "order", "family", "genus", "species"), fields[1:6], strict=True):
                if v:
                    ranks[r] += 1
    return kinds, ranks


def map_imagenet(wn: WordNet, lines: list[str]) -> list[dict[str, object]]:
    if lines[0] != "background":
        raise SystemExit("imagenet labels: line 0 must be 'background'")
    entries: list[dict[str, object]] = [
        {"index": 0, "label": BLANK, "kind": "background", "source_label": "background", "wordnet": None}
    ]
    prev = -1
    for idx, line in enumerate(lines[1:], start=1):
        names = [n.strip() for n in line.split(",")]
        key = [n.replace(" ", "_").lower() for n in names]
        cands = sorted(o for o in wn.by_lemma.get(key[0], []) if [w.lower() for w in wn.lemmas[o]] == key and o > prev)
        if not cands:
            raise SystemExit(f"imagenet label {idx} {line!r}: no WordNet synset with this lemma list")
        off = cands[0]
        prev = off
        anc = wn.ancestors(off)
        common = names[0].lower()
        if PERSON_SYNSET in anc:
            kind, label = "human", HUMAN
        elif VEHICLE_SYNSET in anc:
            kind, label = "vehicle", VEHICLE
        elif ANIMAL_SYNSET in anc:
            kind = "animal"
            ranks = wn.taxon_ranks([off])
            genus = ranks.get("genus", "")
            species = ""
            if genus:
                for a in anc:
                    for w in wn.lemmas[a]:
                        parts = w.split("_")
                        if len(parts) == 2 and parts[0].lower() == genus and parts[1].islower():
                            species = parts[1]
                            break
                    if species:
                        break
            label = _label(
                ranks.get("class", ""),
                ranks.get("order", ""),
                ranks.get("family", ""),
                genus,
                species,
                common,
            )
        else:
            kind, label = "object", _label("", "", "", "", "", common)
        entries.append({"index": idx, "label": label, "kind": kind, "source_label": line, "wordnet": f"n{off:08d}"})
    return entries


_INAT = re.compile(r"^(?P<sci>[^()]+?)\s*\((?P<common>.+)\)$")


def map_inat(wn: WordNet, lines: list[str]) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    for idx, line in enumerate(lines):
        if line == "background":
            entries.append({"index": idx, "label": BLANK, "kind": "background", "source_label": line, "wordnet": None})
            continue
        m = _INAT.match(line)
        if not m:
            raise SystemExit(f"inat label {idx} {line!r}: not 'Genus species (Common Name)'")
        # the upstream file writes the hybrid sign as the 4 characters "\\xd7"
        words = m["sci"].replace("\\xd7", "\u00d7").split()
        genus = words[0].lower()
        hybrid = any(w in ("\u00d7", "x") for w in words)
        species = words[1].lower() if len(words) >= 2 and not hybrid else ""
        common = m["common"].replace("\\xd7", "\u00d7").strip().lower()
        order = family = ""
        cls = "aves"
        wn_ref = None
        gsyn = [o for o in wn.by_lemma.get(f"genus_{genus}", []) if wn.rank_name(o) == ("genus", genus)]
        if gsyn:
            ranks = wn.taxon_ranks([gsyn[0]])
            if ranks.get("class", "aves") == "aves":  # the same genus name in another class is not this bird
                order, family = ranks.get("order", ""), ranks.get("family", "")
                wn_ref = f"n{gsyn[0]:08d}"
        entries.append(
            {
                "index": idx,
                "label": _label(cls, order, family, genus, species, common),
                "kind": "animal",
                "source_label": line,
                "wordnet": wn_ref,
            }
        )
    return entries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--labels", type=Path, default=ROOT.parent / "shared" / "data" / "models" / "coral")
    ap.add_argument("--out", type=Path, default=ROOT / "src" / "sleuth" / "data" / "taxonomy")
    args = ap.parse_args()

    wn = WordNet(args.wordnet)
    source = {"wordnet": _wordnet_version(), "data.noun_sha256": wn.data_sha256}
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        ("coral-imagenet", "imagenet_labels.txt", map_imagenet),
        ("coral-inat-birds", "inat_bird_labels.txt", map_inat),
    ]
    for model, fname, fn in jobs:
        path = args.labels / fname
        lines = _read_lines(path)
        entries = fn(wn, lines)
        kinds, ranks = _summary(entries)
        doc = {
            "model": model,
            "labels_file": fname,
            "labels_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "num_labels": len(entries),
            "source": source,
            "id_scheme": "uuid5(SLEUTH_TAXONOMY_NS, 'class;order;family;genus;species;common name'); "
            "SLEUTH_TAXONOMY_NS = uuid5(NAMESPACE_DNS, 'taxonomy.sleuth') = " + str(SLEUTH_TAXONOMY_NS) + "; "
            "blank/human/vehicle use SpeciesNet's own strings",
            "kind_counts": kinds,
            "animal_rank_counts": ranks,
            "generator": "scripts/make_taxonomy.py",
            "labels": entries,
        }
        out = args.out / f"{model}.json"
        out.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"{out}: {len(entries)} labels, kinds {kinds}, animal ranks {ranks}")


if __name__ == "__main__":
    main()
