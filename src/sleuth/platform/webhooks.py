"""Callbacks from a durable outbox, signed the Standard Webhooks way.

Headers: ``webhook-id`` (the outbox row id, stable across retries), ``webhook-timestamp``
(unix seconds) and ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
``"{id}.{timestamp}.{body}"`` with the team's secret (``whsec_`` + base64 key bytes).
A delivery that fails (network error, non-2xx) is retried with exponential backoff up to
``webhook_max_attempts``; the row records every attempt's error. Rows are written in the
same transaction as the job's terminal state, so a callback is never lost by a crash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from datetime import datetime, timedelta

from sqlalchemy import select, update

from sleuth.db.engine import Database
from sleuth.db.models import Team, WebhookDelivery, utcnow
from sleuth.platform.errors import SleuthError
from sleuth.platform.ssrf import allow_hosts_from, post_json

log = logging.getLogger(__name__)


def _key(secret: str) -> bytes:
    raw = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(raw, validate=True)
    except ValueError:
        return raw.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance_s: int = 300) -> bool:
    """Check a received callback (what a receiver does; used by our tests)."""
    h = {k.lower(): v for k, v in headers.items()}
    msg_id, ts = h.get("webhook-id", ""), h.get("webhook-timestamp", "")
    if not msg_id or not (ts.isascii() and ts.isdigit() and len(ts) <= 20) or abs(time.time() - int(ts)) > tolerance_s:
        return False
    expected = sign(secret, msg_id, int(ts), body).split(",", 1)[1]
    for sig in h.get("webhook-signature", "").split():
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


def deliver_due(db: Database, now: datetime | None = None, limit: int = 20) -> int:
    """Attempt every due delivery once. Returns how many were delivered."""
    now = now or utcnow()
    s_ = db.settings
    allow = allow_hosts_from(s_.url_allow_private)
    with db.session() as s:
        rows = list(
            s.execute(
                select(WebhookDelivery, Team.webhook_secret)
                .join(Team, Team.id == WebhookDelivery.team_id)
                .where(WebhookDelivery.status == "pending", WebhookDelivery.next_attempt_at <= now)
                .order_by(WebhookDelivery.next_attempt_at)
                .limit(limit)
            ).all()
        )
    delivered = 0
    for row, secret in rows:
        # take the row: bump next_attempt_at so a concurrent deliverer skips it
        with db.write_session() as s:
            took = s.execute(
                update(WebhookDelivery)
                .where(
                    WebhookDelivery.id == row.id,
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.attempts == row.attempts,
                )
                .values(attempts=row.attempts + 1, next_attempt_at=now + timedelta(seconds=s_.webhook_timeout_s * 3))
            ).rowcount  # type: ignore[attr-defined]
        if took != 1:
            continue
        body = json.dumps(row.payload, separators=(",", ":"), default=str).encode()
        ts = int(time.time())
        headers = {
            "webhook-id": row.id,
            "webhook-timestamp": str(ts),
            "webhook-signature": sign(secret, row.id, ts, body),
        }
        error = None
        try:
            status = post_json(row.url, body, headers, timeout=s_.webhook_timeout_s, allow_hosts=allow)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except SleuthError as e:
            error = e.message
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        attempts = row.attempts + 1
        with db.session() as s:
            if error is None:
                s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == row.id)
                    .values(status="delivered", delivered_at=utcnow(), last_error=None)
                )
                delivered += 1
            elif attempts >= s_.webhook_max_attempts:
                s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == row.id)
                    .values(status="failed", last_error=error)
                )
            else:
                delay = s_.webhook_backoff_s * (2 ** (attempts - 1))
                s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == row.id)
                    .values(last_error=error, next_attempt_at=utcnow() + timedelta(seconds=delay))
                )
    return delivered


class Deliverer(threading.Thread):
    def __init__(self, db: Database, period_s: float = 0.5) -> None:
        super().__init__(name="sleuth-webhooks", daemon=True)
        self.db, self.period_s = db, period_s
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.period_s):
            try:
                deliver_due(self.db)
            except Exception:
                log.exception("webhook delivery pass failed")

    def stop(self) -> None:
        self._stop_event.set()
