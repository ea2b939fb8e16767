"""Teams and API keys. Only a SHA-256 of each key is stored; the key is shown once."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update

from sleuth.db.engine import Database
from sleuth.db.models import ApiKey, Team, Wallet, utcnow
from sleuth.platform.errors import SleuthError

KEY_PREFIX = "sk_sleuth_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Principal:
    team_id: str
    team_name: str
    key_id: str


@dataclass(frozen=True)
class CreatedKey:
    id: str
    team_id: str
    key: str  # the secret; returned once, never stored
    prefix: str


def new_webhook_secret() -> str:
    """A team's callback signing secret: ``whsec_`` + base64 of 32 random bytes (Standard Webhooks)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def create_team(db: Database, name: str) -> Team:
    name = name.strip()
    if not name:
        raise SleuthError(400, "invalid_team", "Team name must not be empty", "name")
    with db.write_session() as s:
        if s.scalar(select(Team).where(Team.name == name)) is not None:
            raise SleuthError(409, "team_exists", f"Team {name!r} already exists", "name")
        team = Team(name=name, webhook_secret=new_webhook_secret())
        s.add(team)
        s.flush()
        s.add(Wallet(team_id=team.id, balance=0))
        return team


def get_team(db: Database, name_or_id: str) -> Team:
    with db.session() as s:
        team = s.scalar(select(Team).where((Team.name == name_or_id) | (Team.id == name_or_id)))
        if team is None:
            raise SleuthError(404, "team_not_found", f"No team named {name_or_id!r}")
        return team


def list_teams(db: Database) -> list[Team]:
    with db.session() as s:
        return list(s.scalars(select(Team).order_by(Team.created_at)))


def create_key(db: Database, team: str, name: str = "") -> CreatedKey:
    t = get_team(db, team)
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    prefix = secret[: len(KEY_PREFIX) + 6]
    with db.write_session() as s:
        k = ApiKey(team_id=t.id, name=name, prefix=prefix, key_hash=hash_key(secret))
        s.add(k)
        s.flush()
        return CreatedKey(id=k.id, team_id=t.id, key=secret, prefix=prefix)


def list_keys(db: Database, team: str | None = None) -> list[tuple[ApiKey, str]]:
    with db.session() as s:
        q = select(ApiKey, Team.name).join(Team, Team.id == ApiKey.team_id).order_by(ApiKey.created_at)
        if team:
            q = q.where((Team.name == team) | (Team.id == team))
        return [(k, n) for k, n in s.execute(q).all()]


def revoke_key(db: Database, key_id_or_prefix: str) -> ApiKey:
    with db.write_session() as s:
        k = s.scalar(select(ApiKey).where((ApiKey.id == key_id_or_prefix) | (ApiKey.prefix == key_id_or_prefix)))
        if k is None:
            raise SleuthError(404, "key_not_found", f"No API key {key_id_or_prefix!r}")
        if k.revoked_at is None:
            k.revoked_at = utcnow()
        return k


AUTH_FORMS = "'Bearer <API key>' or 'Token token=<API key>'"


def key_from_header(authorization: str | None) -> str:
    """The API key in an ``Authorization`` header, in either of the forms the vendors' clients send.

    * ``Bearer <key>`` (Animal Detect, Resemble's docs, curl examples);
    * ``Token token=<key>`` (Resemble's Node SDK; also ``token="<key>"`` quoted and further ``, k=v``
      parameters, as Rails' token authentication reads it) and bare ``Token <key>``.

    The scheme name is case-insensitive. 401 for a missing header, another scheme or an empty key.
    """
    if not authorization or not authorization.strip():
        raise SleuthError(401, "missing_api_key", f"Missing Authorization header (expected {AUTH_FORMS})")
    scheme, _, rest = authorization.strip().partition(" ")
    rest = rest.strip()
    key = ""
    if scheme.lower() == "bearer":
        key = rest
    elif scheme.lower() == "token":
        first = rest.split(",", 1)[0].strip()
        name, eq, value = first.partition("=")
        if eq and name.strip().lower() == "token":
            key = value.strip()
            if len(key) >= 2 and key[0] == key[-1] == '"':
                key = key[1:-1]
        elif not eq:
            key = first
    if not key or any(c.isspace() for c in key):
        raise SleuthError(401, "invalid_authorization", f"Authorization header must be {AUTH_FORMS}")
    return key


def authenticate(db: Database, authorization: str | None) -> Principal:
    """Resolve an ``Authorization`` header (:func:`key_from_header`); 401 for missing, invalid or revoked keys."""
    token = key_from_header(authorization)
    digest = hash_key(token)
    with db.read_session() as s:
        row = s.execute(
            select(ApiKey.id, ApiKey.revoked_at, Team.id, Team.name)
            .join(Team, Team.id == ApiKey.team_id)
            .where(ApiKey.key_hash == digest)
        ).first()
    if row is None:
        raise SleuthError(401, "invalid_api_key", "Invalid API key")
    key_id, revoked_at, team_id, team_name = row
    if revoked_at is not None:
        raise SleuthError(401, "revoked_api_key", "This API key has been revoked")
    return Principal(team_id=team_id, team_name=team_name, key_id=key_id)


def touch_key(db: Database, key_id: str, when: datetime | None = None) -> None:
    with db.session() as s:
        s.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when or utcnow()))
