"""Secure uploads: a file stored for a team behind a single-use ``media_token``.

``POST /secure_uploads`` stores a file (:func:`store`) and answers a token; ``media_token`` on ``POST /detect``
(and on identity enrol and search) uses it once (:func:`consume`). A token is
``<upload id>.<expiry (unix s)>.<signature>``, an HMAC over the team, the upload id and the expiry with the
server's secret key (``SLEUTH_SECRET_KEY``, as for signed upload URLs), so the answer never depends on whether
the sweeper already ran:

- a token that does not parse: 400 ``invalid_media_token``;
- a signature that does not verify for the caller's team (another team's token, or a forged one): 404, as for
  any other team's object;
- expired (``SLEUTH_MEDIA_TOKEN_TTL_S``, default 1 h), already used, or in use by a request in flight: 400
  ``invalid_media_token``.

Nothing of the file stays with the token: using it deletes the row and the stored file (the consumer keeps its own
copy, e.g. a detect's media, under that request's own retention rules, zero retention included); an unused token's
file is deleted at the first sweep after it expires (:func:`sweep`, run by :func:`sleuth.platform.expiry.sweep`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select, update

from sleuth.db.engine import Database
from sleuth.db.models import SecureUpload, utcnow
from sleuth.platform.context import Platform
from sleuth.platform.errors import SleuthError
from sleuth.platform.storage import Storage

FIELD = "media_token"
# a claim older than this belongs to a request that died: the sweeper may remove its (expired) upload
STALE_CLAIM = timedelta(hours=1)


@dataclass(frozen=True)
class StoredUpload:
    id: str
    token: str
    filename: str
    media_type: str
    size: int
    expires_at: datetime


@dataclass(frozen=True)
class UploadedMedia:
    """What a consumer gets: the file as a local path, valid inside the ``consume`` block only."""

    id: str
    filename: str
    media_type: str
    size: int
    path: Path


def invalid(message: str) -> SleuthError:
    return SleuthError(400, "invalid_media_token", message, FIELD)


def _signature(key: bytes, team_id: str, upload_id: str, exp: int) -> str:
    mac = hmac.new(key, f"media_token\n{team_id}\n{upload_id}\n{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def make_token(key: bytes, team_id: str, upload_id: str, exp: int) -> str:
    return f"{uuid.UUID(upload_id).hex}.{exp}.{_signature(key, team_id, upload_id, exp)}"


def verify_token(key: bytes, team_id: str, token: object) -> tuple[str, datetime]:
    """``(upload id, expiry)`` of a token signed for ``team_id``; raises as described in the module docstring."""
    if not isinstance(token, str) or not token:
        raise invalid("media_token must be the token string that POST /secure_uploads returned")
    parts = token.strip().split(".")
    try:
        if len(parts) != 3:
            raise ValueError
        upload_id = str(uuid.UUID(hex=parts[0]))
        exp = int(parts[1])
        expires_at = datetime.fromtimestamp(exp, UTC)
    except (ValueError, OverflowError, OSError):
        raise invalid("media_token is malformed (expected the token POST /secure_uploads returned)") from None
    if not hmac.compare_digest(parts[2], _signature(key, team_id, upload_id, exp)):
        raise SleuthError(404, "not_found", "media_token not found", FIELD)
    if expires_at <= utcnow():
        raise invalid("media_token has expired; upload the file again with POST /secure_uploads")
    return upload_id, expires_at


def store(platform: Platform, team_id: str, filename: str, media_type: str, path: Path, size: int) -> StoredUpload:
    """Store an already checked file (type, size) for ``team_id`` and return its token."""
    upload_id = str(uuid.uuid4())
    exp = int((utcnow() + timedelta(seconds=platform.settings.media_token_ttl_s)).timestamp())
    expires_at = datetime.fromtimestamp(exp, UTC)
    key = f"uploads/{team_id}/{upload_id}/{filename}"
    with open(path, "rb") as f:
        platform.storage.put(key, f)
    try:
        with platform.db.write_session() as s:
            s.add(
                SecureUpload(
                    id=upload_id,
                    team_id=team_id,
                    filename=filename,
                    media_type=media_type,
                    size=size,
                    storage_key=key,
                    expires_at=expires_at,
                )
            )
    except BaseException:
        platform.storage.delete(key)
        raise
    token = make_token(platform.settings.signing_key(), team_id, upload_id, exp)
    return StoredUpload(upload_id, token, filename, media_type, size, expires_at)


def _claim(db: Database, team_id: str, upload_id: str) -> SecureUpload:
    now = utcnow()
    with db.write_session() as s:
        row = s.get(SecureUpload, upload_id)
        if row is None or row.team_id != team_id:
            raise invalid("media_token has already been used; upload the file again with POST /secure_uploads")
        if row.expires_at <= now:
            raise invalid("media_token has expired; upload the file again with POST /secure_uploads")
        claimed = s.execute(
            update(SecureUpload)
            .where(SecureUpload.id == upload_id, SecureUpload.claimed_at.is_(None))
            .values(claimed_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            raise invalid("media_token is being used by another request")
        s.expunge(row)
        return row


@contextmanager
def consume(platform: Platform, team_id: str, token: object) -> Iterator[UploadedMedia]:
    """Use a media token once: yields the file; on a normal exit the token and the file are gone.

    If the block raises (a 402, a refused option, a failed store), the token is released and can be used again
    before it expires. A second, concurrent use while the block runs is refused.
    """
    upload_id, _exp = verify_token(platform.settings.signing_key(), team_id, token)
    row = _claim(platform.db, team_id, upload_id)
    tmp: Path | None = None
    try:
        path = platform.storage.local_path(row.storage_key)
        if path is None:  # object store: a local copy for the consumer
            with tempfile.NamedTemporaryFile(suffix=Path(row.filename).suffix, delete=False) as fd:
                fd.write(platform.storage.get(row.storage_key))
            path = tmp = Path(fd.name)
        yield UploadedMedia(row.id, row.filename, row.media_type, row.size, path)
    except BaseException:
        with platform.db.session() as s:
            s.execute(update(SecureUpload).where(SecureUpload.id == upload_id).values(claimed_at=None))
        raise
    else:
        with platform.db.session() as s:
            s.execute(delete(SecureUpload).where(SecureUpload.id == upload_id))
        platform.storage.delete(row.storage_key)
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def sweep(db: Database, storage: Storage, now: datetime) -> int:
    """Delete expired uploads, file first, then row (a claim in flight is left alone for an hour)."""
    with db.read_session() as s:
        rows = list(
            s.execute(
                select(SecureUpload.id, SecureUpload.storage_key).where(
                    SecureUpload.expires_at <= now,
                    SecureUpload.claimed_at.is_(None) | (SecureUpload.claimed_at <= now - STALE_CLAIM),
                )
            )
        )
    for upload_id, key in rows:
        storage.delete(key)
        with db.session() as s:
            s.execute(delete(SecureUpload).where(SecureUpload.id == upload_id))
    return len(rows)
