"""A detect's fields with the types Resemble's Node SDK declares (``@resemble/node`` 3.5.3, ``dist/v2/detection.d.ts``).

The SDK's ``Detection`` interface is what a TypeScript client compiles against, so every field it declares is
returned with that type (``tests/clients`` type-checks live responses against those declarations with ``tsc``):

- ``metrics`` (a required object; ``{}`` while processing and for an image): ``label: string``,
  ``score: number[]`` (per-chunk P(fake); Resemble's docs print strings, its SDK declares numbers),
  ``certainty: string``, ``aggregated_score: string``, ``image?: string``;
- ``image_metrics``: ``type, image, label, score: string``, ``children: {type, label, description: string}[]``;
- ``video_metrics``: ``image, label, score, certainty, posterior, treeview: string`` and ``children``, each
  ``{type, score, certainty, posterior, conclusion: string, children?}`` down the tree;
- ``duration?: string`` (seconds).

Scores become strings with 6 decimals. A value the analysis does not have (no face found, no visualization, a
score while processing) stays ``null``. Where the analysis gives no ``certainty`` / ``posterior`` /
``treeview``, the minimal value is filled in: ``certainty = |score - 0.5| * 2`` as for video (0 undecided, 1 sure),
``posterior = score`` (the model's P(fake)), and ``treeview`` a text rendering of the ``video_metrics`` tree.
"""

from __future__ import annotations

from typing import Any


def score_str(v: Any) -> str | None:
    if v is None or isinstance(v, str):
        return v
    return f"{float(v):.6f}"


def _certainty(score: Any) -> str | None:
    if score is None:
        return None
    return f"{abs(float(score) - 0.5) * 2:.6f}"


def audio_metrics(m: dict[str, Any] | None) -> dict[str, Any]:
    if not m:
        return {}
    out = dict(m)
    if isinstance(out.get("score"), list):
        out["score"] = [float(x) for x in out["score"]]
    if "certainty" not in out and out.get("aggregated_score") is not None:
        out["certainty"] = _certainty(out["aggregated_score"])
    elif "certainty" in out:
        out["certainty"] = score_str(out["certainty"])
    return out


def _face_description(face: dict[str, Any]) -> str:
    box = face.get("box") or []
    where = f" at x={box[0]:g}, y={box[1]:g}, {box[2]:g}x{box[3]:g} px" if len(box) == 4 else ""
    score = face.get("score")
    p = f"P(fake) {float(score):.3f}" if score is not None else "not scored"
    return f"face{where}: {p}, {face.get('label', 'unknown')}"


def image_metrics(m: dict[str, Any] | None) -> dict[str, Any] | None:
    if m is None:
        return None
    out = dict(m)
    out["score"] = score_str(out.get("score"))
    out.setdefault("image", None)
    out["children"] = [
        {**c, "description": c.get("description") or _face_description(c)} for c in out.get("children") or []
    ]
    return out


def _video_node(node: dict[str, Any]) -> dict[str, Any]:
    out = dict(node)
    score = out.get("score")
    out["score"] = score_str(score)
    out["certainty"] = score_str(out["certainty"]) if "certainty" in out else _certainty(score)
    out.setdefault("posterior", score_str(score))
    if "children" in out:
        out["children"] = [_video_node(c) for c in out["children"] or []]
    return out


def _tree_line(node: dict[str, Any]) -> str:
    kind = node.get("type", "")
    verdict = node.get("conclusion") or node.get("label") or "unknown"
    if kind == "VideoResult":
        where = f"{node.get('start', 0):g}-{node.get('end', 0):g} s"
    elif kind == "ImageResult":
        where = f"frame at {float(node.get('timestamp', 0)):.2f} s"
    elif kind == "Segment":
        where = f"face track {node.get('track')}" if node.get("track") is not None else "face"
    else:
        where = "video"
    score = node.get("score")
    return f"{where}: {verdict}" + (f" (score {float(score):.3f})" if score is not None else "")


def treeview(vm: dict[str, Any]) -> str:
    """The ``video_metrics`` tree as indented text, one line per window, frame and face."""
    lines = [_tree_line(vm)]

    def walk(children: list[dict[str, Any]], indent: str) -> None:
        for i, c in enumerate(children):
            last = i == len(children) - 1
            lines.append(f"{indent}{'└── ' if last else '├── '}{_tree_line(c)}")
            walk(c.get("children") or [], indent + ("    " if last else "│   "))

    walk(vm.get("children") or [], "")
    return "\n".join(lines)


def video_metrics(m: dict[str, Any] | None) -> dict[str, Any] | None:
    if m is None:
        return None
    out = _video_node(m)
    out.setdefault("image", None)
    out.setdefault("children", [])
    if not isinstance(out.get("treeview"), str):
        out["treeview"] = treeview(m)
    return out


def duration(d: Any) -> str | None:
    if d is None or isinstance(d, str):
        return d
    return str(round(float(d), 3))


def _vote(p: dict[str, Any] | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {**p, **{k: score_str(p.get(k)) for k in ("score", "raw_score", "threshold", "certainty") if k in p}}


def verdict(v: dict[str, Any] | None) -> dict[str, Any] | None:
    """sleuth's own ``verdict`` (not in the SDK): scores as strings like the SDK's, parts likewise."""
    if v is None:
        return None
    out = _vote(v) or {}
    if isinstance(v.get("parts"), dict):
        out["parts"] = {k: _vote(p) for k, p in v["parts"].items()}
    return out


def conform(view: dict[str, Any]) -> dict[str, Any]:
    """A detect ``item`` (``services.deepfake.item_view``) with the SDK's declared field types."""
    view["metrics"] = audio_metrics(view.get("metrics"))
    view["image_metrics"] = image_metrics(view.get("image_metrics"))
    view["video_metrics"] = video_metrics(view.get("video_metrics"))
    view["duration"] = duration(view.get("duration"))
    if "verdict" in view:
        view["verdict"] = verdict(view.get("verdict"))
    return view


def page(items: list[Any], total: int, page: int, page_size: int) -> dict[str, Any]:
    """Resemble's paged list body: the items of ``page`` (1-based) and the counts a client pages with."""
    return {
        "success": True,
        "page": page,
        "num_pages": max(1, -(-total // page_size)),
        "page_size": page_size,
        "total_count": total,
        "items": items,
    }
