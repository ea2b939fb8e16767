"""What the web app shows about the signed-in key's team: the key, and the team's webhook secret (read, rotate)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from sleuth.db.engine import Database
from sleuth.db.models import ApiKey, Team
from sleuth.platform.auth import new_webhook_secret
from sleuth.platform.errors import SleuthError


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    key_name: str
    key_prefix: str
    team_id: str
    team_name: str

    @property
    def reviewer(self) -> str:
        """The name a review is recorded under when the page gives none: the key's name, else its prefix."""
        return self.key_name or self.key_prefix


def key_info(db: Database, key_id: str) -> KeyInfo:
    with db.read_session() as s:
        row = s.execute(
            select(ApiKey.id, ApiKey.name, ApiKey.prefix, Team.id, Team.name)
            .join(Team, Team.id == ApiKey.team_id)
            .where(ApiKey.id == key_id)
        ).first()
    if row is None:
        raise SleuthError(401, "invalid_api_key", "Invalid API key")
    return KeyInfo(*row)


def webhook_secret(db: Database, team_id: str) -> str:
    with db.read_session() as s:
        team = s.get(Team, team_id)
        if team is None:
            raise SleuthError(404, "team_not_found", "Team not found")
        return team.webhook_secret


def rotate_webhook_secret(db: Database, team_id: str) -> str:
    """A new secret, effective at once: callbacks sent from now on (retries of earlier ones too) are signed with it."""
    secret = new_webhook_secret()
    with db.write_session() as s:
        team = s.get(Team, team_id)
        if team is None:
            raise SleuthError(404, "team_not_found", "Team not found")
        team.webhook_secret = secret
    return secret


__all__ = ["KeyInfo", "key_info", "rotate_webhook_secret", "webhook_secret"]
