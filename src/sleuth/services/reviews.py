"""Human review of wildlife results: confirm or correct a box's label, reject a box, add a missed box, mark an image
blank. Reviews are stored as an append-only log of actions per image (``reviews`` table) and replayed, in order,
over the model's boxes; every export applies them (see :mod:`sleuth.services.exports`).

An image is one entry of a stored result: index 0 of a single-image result (``/v1/detect``, ``/v1/detect-url``, an
async job), index ``i`` of a batch result's ``results``. Boxes are numbered as the result's ``annotations`` (or
``detections``) are, then the boxes reviewers added, in the order they were added; a rejected box keeps its number.

Actions (``action``):

* ``confirm`` (``box``): the label is right (a rejected box comes back).
* ``correct`` (``box``, ``label``, optional ``category``): the label is wrong; ``label`` is a common name, a
  binomial or a label string (resolved by :mod:`sleuth.services.labels`).
* ``reject`` (``box``): not an animal, person or vehicle (a false box).
* ``add`` (``bbox`` ``[x, y, w, h]`` normalised, optional ``label`` (default ``animal``) and ``category``).
* ``blank`` (no box): nothing in the image; every box is rejected. A later confirm, correct or add un-blanks it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from sleuth.db.models import Review, StoredResult, utcnow
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request
from sleuth.platform.expiry import register_sweeper
from sleuth.services import labels
from sleuth.services.folder.engines import _category_of_label, label_string

ACTIONS = ("confirm", "correct", "reject", "add", "blank")
BOX_ACTIONS = ("confirm", "correct", "reject")
CATEGORY_NAMES = {1: "animal", 2: "person", 3: "vehicle"}


@dataclass
class Box:
    box: int
    origin: str  # machine | added
    bbox: list[float]
    category: int
    label: str | None  # label string (SpeciesNet 7 fields, or a plain name)
    score: float | None  # the model's score (None for an added box)
    machine_label: str | None = None
    status: str = "unreviewed"  # unreviewed | confirmed | corrected | rejected | added
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    repeat: bool = False  # the API's repeat-detection flag: recurs at this place across the camera's images

    def to_dict(self) -> dict[str, Any]:
        return {
            "box": self.box,
            "repeat": self.repeat,
            "origin": self.origin,
            "bbox": self.bbox,
            "category": CATEGORY_NAMES[self.category],
            "label": labels.common_name_of(self.label) if self.label else None,
            "label_string": self.label,
            "score": self.score,
            "machine_label": labels.common_name_of(self.machine_label) if self.machine_label else None,
            "status": self.status,
            "reviewer": self.reviewer,
            "reviewed_at": _iso(self.reviewed_at),
        }


@dataclass
class ImageState:
    result_id: str
    index: int
    boxes: list[Box]
    blank: bool = False
    reviewer: str | None = None  # who acted last
    reviewed_at: datetime | None = None
    actions: int = 0
    history: list[Review] = field(default_factory=list)

    @property
    def reviewed(self) -> bool:
        return self.actions > 0

    def to_dict(self, with_history: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "result_id": self.result_id,
            "index": self.index,
            "reviewed": self.reviewed,
            "blank": self.blank,
            "reviewer": self.reviewer,
            "reviewed_at": _iso(self.reviewed_at),
            "boxes": [b.to_dict() for b in self.boxes],
        }
        if with_history:
            out["history"] = [review_view(r) for r in self.history]
        return out


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z") if dt else None


def review_view(r: Review) -> dict[str, Any]:
    return {
        "id": r.id,
        "result_id": r.result_id,
        "index": r.image_index,
        "action": r.action,
        "box": r.box,
        "label": labels.common_name_of(r.label) if r.label else None,
        "label_string": r.label,
        "category": CATEGORY_NAMES.get(r.category or 0),
        "bbox": r.bbox,
        "reviewer": r.reviewer,
        "comment": r.comment,
        "created_at": _iso(r.created_at),
    }


# --- the model's boxes --------------------------------------------------------------------------------------


def image_items(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The images of a stored result: a batch's ``results``, or the single result itself."""
    results = payload.get("results")
    if isinstance(results, list):
        return [r for r in results if isinstance(r, dict)]
    return [payload]


def machine_boxes(item: dict[str, Any]) -> list[Box]:
    out: list[Box] = []
    for i, a in enumerate(item.get("annotations") or []):
        label = str(a.get("label") or "animal")
        out.append(
            Box(
                i,
                "machine",
                [float(v) for v in a["bbox"]],
                _category_of_label(label),
                label_string(label, a.get("taxonomy")),
                float(a.get("score") or 0.0),
                repeat=a.get("repeat_detection") is True,
            )
        )
    if not out:
        for i, d in enumerate(item.get("detections") or []):  # filter endpoints: detector classes only
            cat = int(d.get("category") or 1)
            out.append(
                Box(
                    i,
                    "machine",
                    [float(v) for v in d["bbox"]],
                    cat,
                    None,
                    float(d.get("score") or 0.0),
                    repeat=d.get("repeat_detection") is True,
                )
            )
    return out


# --- replay -------------------------------------------------------------------------------------------------


def replay(result_id: str, index: int, boxes: list[Box], reviews: Iterable[Review]) -> ImageState:
    """Apply ``reviews`` (in order) to the model's ``boxes``."""
    state = ImageState(result_id, index, [Box(**b.__dict__) for b in boxes])
    for r in reviews:
        _apply(state, r)
        state.actions += 1
        state.reviewer, state.reviewed_at = r.reviewer, r.created_at
        state.history.append(r)
    return state


def _apply(state: ImageState, r: Review) -> None:
    def mark(b: Box, status: str) -> None:
        b.status, b.reviewer, b.reviewed_at = status, r.reviewer, r.created_at

    if r.action == "blank":
        state.blank = True
        for b in state.boxes:
            if b.status != "rejected":
                mark(b, "rejected")
        return
    if r.action == "add":
        state.blank = False
        b = Box(len(state.boxes), "added", list(r.bbox or []), r.category or 1, r.label, None)
        mark(b, "added")
        state.boxes.append(b)
        return
    if r.box is None or not 0 <= r.box < len(state.boxes):
        return  # validated on the way in; a stored row never points elsewhere
    b = state.boxes[r.box]
    if r.action == "reject":
        mark(b, "rejected")
        return
    state.blank = False
    if r.action == "confirm":
        mark(b, "added" if b.origin == "added" else ("corrected" if b.machine_label else "confirmed"))
    elif r.action == "correct":
        if b.origin == "machine" and b.machine_label is None:
            b.machine_label = b.label
        b.label = r.label
        if r.category:
            b.category = r.category
        mark(b, "added" if b.origin == "added" else "corrected")


# --- storage ------------------------------------------------------------------------------------------------


def stored_payload(platform: Platform, team_id: str, result_id: str) -> dict[str, Any]:
    with platform.db.read_session() as s:
        row = s.get(StoredResult, result_id)
        if row is None or row.team_id != team_id or row.expires_at <= utcnow():
            raise SleuthError(404, "not_found", f"Result {result_id} not found or expired", "result_id")
        return dict(row.payload)


def reviews_for(platform: Platform, team_id: str, result_ids: Sequence[str]) -> dict[tuple[str, int], list[Review]]:
    out: dict[tuple[str, int], list[Review]] = {}
    ids = list(dict.fromkeys(result_ids))
    with platform.db.read_session() as s:
        for start in range(0, len(ids), 500):
            rows = s.scalars(
                select(Review)
                .where(Review.team_id == team_id, Review.result_id.in_(ids[start : start + 500]))
                .order_by(Review.created_at, Review.id)
            )
            for r in rows:
                s.expunge(r)
                out.setdefault((r.result_id, r.image_index), []).append(r)
    return out


def states_of(
    result_id: str, payload: dict[str, Any], reviews: dict[tuple[str, int], list[Review]]
) -> list[ImageState]:
    return [
        replay(result_id, i, machine_boxes(item), reviews.get((result_id, i), []))
        for i, item in enumerate(image_items(payload))
    ]


def image_state(platform: Platform, team_id: str, result_id: str, index: int) -> ImageState:
    payload = stored_payload(platform, team_id, result_id)
    items = image_items(payload)
    if not 0 <= index < len(items):
        raise bad_request(f"index must be between 0 and {len(items) - 1} for this result", "index")
    rv = reviews_for(platform, team_id, [result_id])
    return replay(result_id, index, machine_boxes(items[index]), rv.get((result_id, index), []))


def _bbox(value: Any) -> list[float]:
    if not isinstance(value, list) or len(value) != 4:
        raise bad_request("bbox must be [x, y, width, height], normalised to 0-1", "bbox")
    try:
        x, y, w, h = (float(v) for v in value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past float's range
        raise bad_request("bbox values must be numbers", "bbox") from None
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        raise bad_request("bbox values must be finite", "bbox")
    if not (0 <= x <= 1 and 0 <= y <= 1 and 0 < w <= 1 and 0 < h <= 1 and x + w <= 1.001 and y + h <= 1.001):
        raise bad_request("bbox must lie inside the image: 0 <= x, y; 0 < w, h; x + w <= 1; y + h <= 1", "bbox")
    return [round(x, 6), round(y, 6), round(min(w, 1 - x), 6), round(min(h, 1 - y), 6)]


def _category(value: Any) -> int | None:
    if value in (None, ""):
        return None
    names = {v: k for k, v in CATEGORY_NAMES.items()} | {"human": 2}
    if isinstance(value, str) and value.lower() in names:
        return names[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and value in CATEGORY_NAMES:
        return value
    raise bad_request("category must be animal, person or vehicle", "category")


def add_review(
    platform: Platform,
    team_id: str,
    key_id: str,
    default_reviewer: str,
    body: dict[str, Any],
) -> tuple[Review, ImageState]:
    """Validate one action against the image's current state, store it, return it with the new state."""
    result_id = body.get("result_id")
    if not isinstance(result_id, str) or not result_id:
        raise bad_request("result_id is required (a result id, or an async job id)", "result_id")
    index = body.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise bad_request("index must be an integer", "index")
    action = body.get("action")
    if action not in ACTIONS:
        raise bad_request(f"action must be one of {', '.join(ACTIONS)}", "action")
    reviewer = body.get("reviewer")
    if reviewer is not None and (not isinstance(reviewer, str) or len(reviewer) > 200):
        raise bad_request("reviewer must be a string of at most 200 characters", "reviewer")
    reviewer = (reviewer or "").strip() or default_reviewer
    comment = body.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
        raise bad_request("comment must be a string of at most 2000 characters", "comment")
    current = image_state(platform, team_id, result_id, index)
    row = Review(
        team_id=team_id,
        result_id=result_id,
        image_index=index,
        action=action,
        reviewer=reviewer,
        key_id=key_id,
        comment=comment or None,
        created_at=utcnow(),
    )
    category = _category(body.get("category"))
    if action in BOX_ACTIONS:
        box = body.get("box")
        if isinstance(box, bool) or not isinstance(box, int) or not 0 <= box < len(current.boxes):
            raise bad_request(f"box must be the number of a box of this image (0-{len(current.boxes) - 1})", "box")
        row.box = box
    elif body.get("box") is not None:
        raise bad_request(f"{action} takes no box", "box")
    if action == "correct" or (action == "add" and body.get("label") not in (None, "")):
        text = body.get("label")
        if not isinstance(text, str):
            raise bad_request("label is required: a common name, binomial or label string", "label")
        try:
            entry = labels.resolve(text, platform.settings.classifier_pack)
        except ValueError as e:
            raise bad_request(str(e), "label") from None
        row.label = entry.label
        row.category = category or entry.category
    elif action == "add":
        row.category = category or 1
        row.label = labels.resolve({1: "animal", 2: "human", 3: "vehicle"}[row.category]).label
    elif body.get("label") not in (None, ""):
        raise bad_request(f"{action} takes no label (use correct to change a label)", "label")
    if action == "add":
        row.bbox = _bbox(body.get("bbox"))
    elif body.get("bbox") is not None:
        raise bad_request(f"{action} takes no bbox", "bbox")
    with platform.db.session() as s:
        s.add(row)
        s.flush()
        s.expunge(row)
    return row, image_state(platform, team_id, result_id, index)


def sweep_orphans(db: Any, storage: Any, now: Any) -> int:
    """Reviews of results that no longer exist (expired and swept) go with them."""
    with db.session() as s:
        res = s.execute(delete(Review).where(~Review.result_id.in_(select(StoredResult.id))))
        return int(getattr(res, "rowcount", 0) or 0)


register_sweeper(sweep_orphans)
