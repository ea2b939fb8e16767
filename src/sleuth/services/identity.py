"""Identity search (Resemble's ``/identity`` API): a team's saved voices and the search against them.

An identity is a name and the 256-d voice embedding of its enrolment audio (the Resemblyzer speaker encoder,
:class:`sleuth.models.speaker.SpeakerEncoder`). Only the embedding is kept: the enrolment audio is decoded from a
temporary file the request owns and never stored, whatever the retention mode.

A search embeds the query audio the same way and ranks the team's identities by cosine similarity of the
embeddings (all entries are >= 0, so it lies in [0, 1]):

- ``distance = 1 - cosine`` ("lower distance = more similar", 0 for the same recording);
- ``confidence``: how sure the match is the same speaker, a logistic curve in the cosine centred on the
  equal-error threshold measured on the shared real speech (:data:`SAME_SPEAKER_COSINE`; docs/api.md gives the
  numbers and the command): 0.5 at that threshold, about 0.95 at +0.1 and 0.05 at -0.1.

Face identities need a face-embedding model, which sleuth does not have: asking for one is a clear 400
(:func:`face_unavailable`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select

from sleuth.db.models import Identity
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError, bad_request

MODEL = "resemblyzer"
MODEL_TAG = "resemblyzer-0.1.4"
TOP_K_DEFAULT = 5
TOP_K_MAX = 20
MAX_AUDIO_S = 600.0
#: cosine similarity at which same-speaker and different-speaker pairs are equally often mistaken (the EER
#: threshold of benchmarks/identity.py on the shared real speech); confidence is 0.5 there.
SAME_SPEAKER_COSINE = 0.70
CONFIDENCE_SLOPE = 30.0  # per unit of cosine: +-0.1 around the threshold -> 0.95 / 0.05
FACE_MISSING = (
    "face identities are not available: sleuth has no face-embedding model (its catalog has none; the "
    "facenet-pytorch wheel ships only the MTCNN face detector, not the InceptionResnetV1 recognition weights, and "
    "the shared model mirror holds no face-embedding weights). Enrol and search voices with audio (or a video's "
    "audio track)"
)


@dataclass(frozen=True)
class VoicePrint:
    embedding: np.ndarray  # float32 [256], unit norm
    speech_s: float  # seconds of speech it was computed from


def face_unavailable(field: str) -> SleuthError:
    return SleuthError(400, "face_identity_unavailable", FACE_MISSING, field)


def voiceprint(path: Path, filename: str, field: str = "file") -> VoicePrint:
    """Decode an audio file (or a video's audio track) and embed its speech; bad audio is a 400 on ``field``."""
    from sleuth.engine.registry import get_model
    from sleuth.media.audio import decode_audio
    from sleuth.media.speech import NoSpeechError

    try:
        wav, _sr = decode_audio(path, filename, max_duration_s=MAX_AUDIO_S)
    except ValueError as e:
        raise bad_request(f"{filename}: the audio could not be decoded ({e})", field, "invalid_media") from None
    try:
        model: Any = get_model(MODEL)
    except Exception as e:  # ModelError / ArtefactError: the encoder cannot be fetched or loaded here
        raise SleuthError(503, "model_unavailable", f"the speaker encoder is not available: {e}") from None
    try:
        mels = model.preprocess(wav)
    except NoSpeechError as e:
        raise bad_request(f"{filename}: {e}; a voice identity needs speech", field, "no_speech") from None
    except ValueError as e:
        raise bad_request(f"{filename}: {e}", field, "invalid_media") from None
    emb = model.postprocess(model.partial_embeddings(mels), mels)
    # each partial is 1.6 s, starting 0.77 s apart: the speech span they cover
    speech_s = 1.6 + 0.77 * (len(mels) - 1)
    return VoicePrint(embedding=emb, speech_s=round(speech_s, 2))


def confidence(cosine: float) -> float:
    return 1.0 / (1.0 + math.exp(-CONFIDENCE_SLOPE * (cosine - SAME_SPEAKER_COSINE)))


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def view(row: Identity) -> dict[str, Any]:
    return {
        "uuid": row.id,
        "name": row.name,
        "type": row.kind,
        "model": row.model,
        "duration": row.duration_s,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad_request("name is required: the identity's name (1-200 characters)", "name")
    name = value.strip()
    if len(name) > 200:
        raise bad_request("name must be at most 200 characters", "name")
    return name


def check_top_k(value: Any) -> int:
    if value is None or value == "":
        return TOP_K_DEFAULT
    try:
        k = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        k = -1
    if isinstance(value, float) and not value.is_integer():
        k = -1
    if not 1 <= k <= TOP_K_MAX:
        raise bad_request(f"top_k must be an integer from 1 to {TOP_K_MAX} (default {TOP_K_DEFAULT})", "top_k")
    return k


def enrol(platform: Platform, team_id: str, name: str, vp: VoicePrint) -> dict[str, Any]:
    row = Identity(
        team_id=team_id,
        name=name,
        kind="voice",
        model=MODEL_TAG,
        embedding=[float(f"{v:.7g}") for v in vp.embedding],
        duration_s=vp.speech_s,
    )
    with platform.db.write_session() as s:
        s.add(row)
        s.flush()
        out = view(row)
    return out


def rank(platform: Platform, team_id: str, embedding: np.ndarray, top_k: int) -> list[dict[str, Any]]:
    """The team's ``top_k`` nearest voice identities, nearest first (ties: older first)."""
    with platform.db.read_session() as s:
        rows = list(
            s.execute(
                select(Identity.id, Identity.name, Identity.embedding)
                .where(Identity.team_id == team_id, Identity.kind == "voice", Identity.model == MODEL_TAG)
                .order_by(Identity.created_at, Identity.id)
            )
        )
    if not rows:
        return []
    mat = np.asarray([r.embedding for r in rows], dtype=np.float32)
    cos = np.clip(mat @ np.asarray(embedding, dtype=np.float32), 0.0, 1.0)
    order = np.argsort(-cos, kind="stable")[:top_k]
    return [
        {
            "uuid": rows[i].id,
            "name": rows[i].name,
            "confidence": round(confidence(float(cos[i])), 4),
            "distance": round(1.0 - float(cos[i]), 4),
        }
        for i in order
    ]


def search_media(platform: Platform, team_id: str, path: Path, filename: str, top_k: int = TOP_K_DEFAULT) -> dict:
    """``search_identity=true`` on a detect: ``{"results": [...], "error_message": None}``, or no results and the
    reason (no speech, no audio track) in ``error_message``; the detect itself never fails because of it."""
    try:
        vp = voiceprint(path, filename)
    except SleuthError as e:
        return {"results": [], "error_message": e.message}
    return {"results": rank(platform, team_id, vp.embedding, top_k), "error_message": None}


def get(platform: Platform, team_id: str, identity_id: str) -> dict[str, Any]:
    with platform.db.read_session() as s:
        row = s.scalar(select(Identity).where(Identity.id == identity_id, Identity.team_id == team_id))
        if row is None:
            raise SleuthError(404, "not_found", "Identity not found")
        return view(row)


def list_page(platform: Platform, team_id: str, page: int, page_size: int) -> tuple[list[dict[str, Any]], int]:
    with platform.db.read_session() as s:
        total = s.scalar(select(func.count()).select_from(Identity).where(Identity.team_id == team_id)) or 0
        rows = s.scalars(
            select(Identity)
            .where(Identity.team_id == team_id)
            .order_by(Identity.created_at.desc(), Identity.id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        )
        return [view(r) for r in rows], int(total)


def remove(platform: Platform, team_id: str, identity_id: str) -> None:
    with platform.db.write_session() as s:
        gone = s.execute(delete(Identity).where(Identity.id == identity_id, Identity.team_id == team_id))
        if not getattr(gone, "rowcount", 0):
            raise SleuthError(404, "not_found", "Identity not found")
