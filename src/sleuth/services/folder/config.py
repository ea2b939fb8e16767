"""The settings of one ``sleuth detect`` run and the run's MegaDetector ``info`` block."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sleuth.exports.records import RunInfo


@dataclass(frozen=True)
class DetectConfig:
    """Options of a folder run; the fields that change results are checked on ``--resume``."""

    profile: str = "default"
    threshold: float = 0.2
    classify: bool = True
    country: str | None = None
    admin1: str | None = None
    video_fps: float = 1.0
    max_video_secs: float | None = 600.0
    chunk_size: int = 16
    checkpoint_every: int = 100
    server: str | None = None
    precision: str | None = None  # MD-Lite int8/fp32 (auto resolved); None = the detector_precision setting
    suppress_repeats: bool = False  # drop repeat detections (flagged either way; applied after the run)

    def __post_init__(self) -> None:
        if self.server is not None:
            if self.precision is not None:
                raise ValueError("--precision applies to local runs; with --server the server's setting decides")
        else:
            from sleuth.engine.runtime import resolve_precision
            from sleuth.settings import get_settings

            object.__setattr__(
                self, "precision", resolve_precision(self.precision or get_settings().detector_precision)
            )
        if self.chunk_size < 1:
            raise ValueError("chunk size must be >= 1")
        if self.checkpoint_every < 1:
            raise ValueError("checkpoint interval must be >= 1")
        if not self.video_fps > 0:
            raise ValueError("video fps must be > 0")
        if self.country is not None:
            from sleuth.pipelines.geo import resolve_country

            object.__setattr__(self, "country", resolve_country(self.country))
        self.image_options()  # validates threshold/admin1

    def image_options(self) -> Any:
        from sleuth.pipelines.wildlife import ImageOptions

        return ImageOptions(threshold=self.threshold, classify=self.classify, country=self.country, admin1=self.admin1)

    def result_key(self) -> dict[str, Any]:
        """The options that change results (a checkpoint made with other values cannot be resumed)."""
        return {
            "profile": self.profile,
            "threshold": self.threshold,
            "classify": self.classify,
            "country": self.country,
            "admin1": self.admin1,
            "video_fps": self.video_fps,
            "max_video_secs": self.max_video_secs,
            "precision": self.precision,
        }

    def resolved_profile(self) -> Any:
        """The profile a local run uses (with ``--server``: the profile as named; the server decides precision)."""
        from sleuth.services.wildlife import PROFILES, with_precision

        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        p = PROFILES[self.profile]
        p = p if self.precision is None else with_precision(p, self.precision)
        if self.server:
            return p
        from sleuth.services.model_selection import resolve
        from sleuth.settings import get_settings

        return resolve(p, get_settings())


def run_info(
    config: DetectConfig, completion_time: datetime | None = None, model_version: str | None = None
) -> RunInfo:
    """``model_version``: what the server reported (``--server`` runs); else the local profile's."""
    p = config.resolved_profile()
    detector, _, classifier = (model_version or p.model_version).partition("+")
    return RunInfo(
        detector=detector,
        classifier=(classifier or None) if config.classify else None,
        threshold=config.threshold,
        completion_time=completion_time,
        classification_completion_time=completion_time if (config.classify and classifier) else None,
        detector_metadata={
            "typical_detection_threshold": config.threshold,
            "sleuth_profile": p.name,
            "sleuth_model_id": p.model_id,
        },
        extra={
            "sleuth": {k: v for k, v in config.result_key().items() if v is not None}
            | ({"server": config.server} if config.server else {})
            | {"suppress_repeats": config.suppress_repeats}
        },
    )
