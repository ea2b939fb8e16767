"""Short-lived signed URLs for media and visualizations, so that a browser can open them without a Bearer header.

A signed link is the resource's path plus ``?expires=<unix s>&signature=<hex HMAC-SHA256>`` over
``"media:<path>:<expires>"`` with the server's signing key (``SLEUTH_SECRET_KEY``, the key that signs async upload
URLs). The signature covers the exact path, so a link opens one resource only, until ``expires``
(``SLEUTH_MEDIA_URL_TTL_S`` from when it was issued). Links are only issued by authenticated requests of the
owning team, and never for zero-retention media (there is no media to link to).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from urllib.parse import urlencode

from sleuth.platform.errors import SleuthError
from sleuth.settings import Settings

Signer = Callable[[str], str]


def signature(key: bytes, path: str, expires: int) -> str:
    return hmac.new(key, f"media:{path}:{expires}".encode(), hashlib.sha256).hexdigest()


def sign_path(key: bytes, path: str, ttl_s: float, now: float | None = None) -> str:
    """``path`` with its ``expires`` and ``signature`` query parameters."""
    expires = int((time.time() if now is None else now) + ttl_s)
    return f"{path}?{urlencode({'expires': expires, 'signature': signature(key, path, expires)})}"


def signer(settings: Settings) -> Signer:
    """A function that turns a path into a signed path, with the settings' key and lifetime."""
    key = settings.signing_key()
    ttl = float(settings.media_url_ttl_s)
    return lambda path: sign_path(key, path, ttl)


def is_valid(key: bytes, path: str, expires: str | None, sig: str | None, now: float | None = None) -> bool:
    if not expires or not sig or not _digits(expires):
        return False
    if int(expires) < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(signature(key, path, int(expires)), sig)


def _digits(s: str) -> bool:
    """Unix seconds as sent: ASCII digits only (``str.isdigit`` also takes '²', which ``int`` refuses)."""
    return s.isascii() and s.isdigit() and len(s) <= 20


def check(key: bytes, path: str, expires: str | None, sig: str | None) -> None:
    """403 for a link whose signature is wrong or whose time is up (the message says which)."""
    if not expires or not sig:
        raise SleuthError(403, "invalid_signature", "The link is missing its signature")
    if not _digits(expires) or not hmac.compare_digest(signature(key, path, int(expires)), sig):
        raise SleuthError(403, "invalid_signature", "The link's signature is invalid")
    if int(expires) < time.time():
        raise SleuthError(403, "link_expired", "The link has expired; reload the page to get a fresh one")
