"""The expiry sweep: one code path for the server's periodic sweeper and ``sleuth sweep``.

:func:`sleuth.platform.expiry.sweep` deletes what the platform itself keeps (expired results, tracked objects,
unused secure uploads) and then runs the clean-up every service registers when it is imported (deepfake jobs with
their items, media and visualizations; wildlife jobs and camera boxes; upload groups; orphaned reviews). A caller
that had not imported a service would silently skip its clean-up, which is how ``sleuth sweep`` once left expired
deepfake jobs behind: :func:`sweep` imports them all first (:func:`sleuth.services.load_handlers`), and both the
server (:class:`Sweeper`) and the CLI call it.
"""

from __future__ import annotations

from datetime import datetime

from sleuth.db.engine import Database
from sleuth.platform import expiry
from sleuth.platform.storage import Storage

SweepReport = expiry.SweepReport


def sweep(db: Database, storage: Storage, now: datetime | None = None) -> SweepReport:
    """Delete everything expired at ``now`` (default: now), every service's included."""
    from sleuth.services import load_handlers

    load_handlers()
    return expiry.sweep(db, storage, now)


class Sweeper(expiry.Sweeper):
    """The server's background sweeper: :func:`sweep` every ``interval`` seconds."""

    def sweep_once(self) -> SweepReport:
        return sweep(self.db, self.storage)
