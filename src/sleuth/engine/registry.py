"""Process-wide registry of loaded models and their micro-batchers.

``get_model(name)`` ensures the catalog entry's artefacts (fetch, verify, convert once),
imports its ``loader`` class and calls ``load(paths, providers)`` exactly once per process,
even when many threads ask at the same time (one lock per model name, so loading a slow
model does not block another). ``get_batcher(name)`` returns that model's single
:class:`~sleuth.engine.batcher.MicroBatcher`.

Before ``load`` the registry sets ``model.catalog_entry`` (the
:class:`~sleuth.engine.catalog.CatalogEntry`) on the instance, so a loader can read
entry-specific keys from ``entry.extra`` (e.g. an input size).
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from sleuth.engine.base import Model, ModelError
from sleuth.engine.batcher import MicroBatcher
from sleuth.engine.catalog import ArtefactError, ensure, get_entry, import_object, load_catalog
from sleuth.engine.runtime import default_providers
from sleuth.engine.threads import at_normal_priority
from sleuth.settings import Settings, get_settings

__all__ = ["close_all", "get_batcher", "get_model", "loaded_models", "reset"]

AnyModel = Model[Any, Any, Any, Any]
AnyBatcher = MicroBatcher[Any, Any, Any, Any]

_lock = threading.Lock()
_name_locks: dict[str, threading.Lock] = {}
_models: dict[str, AnyModel] = {}
_batchers: dict[str, AnyBatcher] = {}


def _name_lock(name: str) -> threading.Lock:
    with _lock:
        lk = _name_locks.get(name)
        if lk is None:
            lk = _name_locks[name] = threading.Lock()
        return lk


def _load(name: str, settings: Settings) -> AnyModel:
    entry = get_entry(name, load_catalog(settings=settings))
    if not entry.servable:  # check before downloading a (possibly large) checkpoint we cannot serve
        note = entry.extra.get("manual_export")
        raise ModelError(
            f"model {name!r} is download-only (no loader): "
            + (note if isinstance(note, str) else "export it to ONNX and register that file as a local catalog entry")
            + " (docs/models.md)"
        )
    paths = ensure(entry, settings)  # ArtefactError propagates with its clear message
    try:
        cls = import_object(entry.loader)
    except ImportError as e:
        raise ModelError(f"model {name!r}: cannot import loader {entry.loader}: {e}") from e
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ModelError(f"model {name!r}: loader {entry.loader} is not a sleuth.engine.base.Model subclass")
    model: AnyModel = cls()
    if not model.name:
        model.name = name
    model.catalog_entry = entry  # type: ignore[attr-defined]
    try:
        model.load(paths, default_providers(settings.providers))
    except (ModelError, ArtefactError):
        raise
    except Exception as e:
        raise ModelError(f"model {name!r}: loading failed: {e}") from e
    return model


def get_model(name: str, settings: Settings | None = None) -> AnyModel:
    """The loaded model ``name`` (loaded on first use; thread-safe, once per process)."""
    model = _models.get(name)
    if model is not None:
        return model
    with _name_lock(name):
        model = _models.get(name)
        if model is None:
            model = _load(name, settings if settings is not None else get_settings())
            with _lock:
                _models[name] = model
        return model


def get_batcher(name: str, settings: Settings | None = None) -> AnyBatcher:
    """The micro-batcher of model ``name`` (one per model per process)."""
    b = _batchers.get(name)
    if b is not None and not b.closed:
        return b
    model = get_model(name, settings)
    with _name_lock(name):
        b = _batchers.get(name)
        if b is None or b.closed:
            # its infer thread and preprocessing pool serve sync requests too: never niced (engine.threads)
            b = at_normal_priority(
                MicroBatcher, model, settings=settings if settings is not None else get_settings(), name=name
            )
            with _lock:
                _batchers[name] = b
        return b


def loaded_models() -> list[str]:
    with _lock:
        return sorted(_models)


def close_all() -> None:
    """Close every batcher (finishing queued items)."""
    with _lock:
        batchers = list(_batchers.values())
    for b in batchers:
        b.close()


def reset() -> None:
    """Close batchers and forget loaded models (tests; settings changes)."""
    close_all()
    with _lock:
        _batchers.clear()
        _models.clear()
        _name_locks.clear()


atexit.register(close_all)
