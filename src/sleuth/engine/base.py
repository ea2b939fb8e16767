"""The one narrow interface every model implements.

A model is loaded once per process from verified artefact files, then driven by the
engine's micro-batcher (``sleuth.engine.batcher``):

* ``preprocess(item)`` runs per item on a preprocessing thread (decode, resize, pad);
  it is pure CPU work and may run while the model is busy with the previous batch.
* ``predict_batch(inputs)`` runs the network once for a list of preprocessed inputs.
* ``postprocess(raw, prepared)`` turns one raw output back into a typed result
  (for example boxes in normalised coordinates of the original image).

Models never do HTTP or database work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

InT = TypeVar("InT")  # what callers submit (bytes, decoded image, waveform, ...)
PrepT = TypeVar("PrepT")  # what preprocess returns and predict_batch consumes
RawT = TypeVar("RawT")  # one item's raw network output
OutT = TypeVar("OutT")  # the typed result


class ModelError(Exception):
    """A model could not load or run (bad artefact, wrong shapes, runtime failure)."""


class Model(ABC, Generic[InT, PrepT, RawT, OutT]):
    """Base class of every served model.

    Subclasses set ``name`` (the catalog name) and implement the four methods.
    ``max_batch_size`` is the largest batch ``predict_batch`` accepts efficiently.
    """

    name: str = ""
    max_batch_size: int = 8

    @abstractmethod
    def load(self, artefacts: Mapping[str, Path], providers: Sequence[str] | None = None) -> None:
        """Load from verified artefact files (``artefact name -> path``)."""

    @abstractmethod
    def preprocess(self, item: InT) -> PrepT:
        """Per-item CPU preprocessing. Raise ``ValueError`` for bad input."""

    @abstractmethod
    def predict_batch(self, inputs: Sequence[PrepT]) -> list[RawT]:
        """Run the network on a batch; returns one raw output per input, in order."""

    @abstractmethod
    def postprocess(self, raw: RawT, prepared: PrepT) -> OutT:
        """Turn one raw output into the typed result."""

    def __call__(self, items: Sequence[InT]) -> list[OutT]:
        """Convenience: run the whole path in the calling thread (tests, CLI)."""
        prepared = [self.preprocess(i) for i in items]
        out: list[OutT] = []
        for start in range(0, len(prepared), max(1, self.max_batch_size)):
            chunk = prepared[start : start + self.max_batch_size]
            raws = self.predict_batch(chunk)
            out.extend(self.postprocess(r, p) for r, p in zip(raws, chunk, strict=True))
        return out


def describe(model: Model[Any, Any, Any, Any]) -> dict[str, Any]:
    return {"name": model.name, "max_batch_size": model.max_batch_size}
