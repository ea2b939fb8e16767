"""Settings from the environment (``SLEUTH_*``) and an optional TOML file.

Precedence: explicit constructor arguments > environment > TOML file (``SLEUTH_CONFIG``
or ``./sleuth.toml``) > defaults. Everything has an embedded default: SQLite and local
files under ``data_dir``, in-process workers, billing disabled.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

#: Where sleuth versions before 0.2 kept their data: ``./data`` relative to the current folder.
LEGACY_DATA_DIR = Path("data")


def default_data_dir() -> Path:
    """The platform's per-user data folder (``$XDG_DATA_HOME/sleuth``, default ``~/.local/share/sleuth``
    on Linux; ``~/Library/Application Support/sleuth`` on macOS; ``%LOCALAPPDATA%\\sleuth`` on Windows)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("sleuth", appauthor=False))


def _holds_sleuth_data(path: Path) -> bool:
    """``path`` looks like a data folder an older sleuth wrote (its database, signing key or storage)."""
    return path.is_dir() and any((path / n).exists() for n in ("sleuth.db", "secret_key", "storage"))


def _config_file() -> Path | None:
    explicit = os.environ.get("SLEUTH_CONFIG")
    if explicit:
        return Path(explicit)
    local = Path("sleuth.toml")
    return local if local.is_file() else None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SLEUTH_", extra="ignore")

    # --- storage and database -------------------------------------------------------
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Root for the SQLite DB, uploads, results and the model cache; default: the per-user data "
        "folder (~/.local/share/sleuth on Linux; a ./data of an older version is used, with a warning).",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL; empty = SQLite in data_dir.")
    db_pool_size: int = Field(default=10, description="Connection pool size (PostgreSQL).")
    db_max_overflow: int = Field(default=20, description="Extra connections over the pool size (PostgreSQL).")
    sqlite_busy_timeout_ms: int = Field(default=30000, description="SQLite busy timeout.")
    storage: Literal["local", "s3"] = Field(default="local", description="Media/result storage backend.")
    storage_dir: Path | None = Field(default=None, description="Local storage root; default data_dir/storage.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible endpoint URL.")
    s3_bucket: str = Field(default="sleuth", description="S3 bucket.")
    s3_region: str = Field(default="us-east-1", description="S3 region.")
    s3_access_key_id: str = Field(default="", description="S3 access key id.")
    s3_secret_access_key: str = Field(default="", description="S3 secret key.")

    # --- server ---------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", description="Bind address of `sleuth serve`.")
    port: int = Field(default=8000, description="Port of `sleuth serve`.")
    public_url: str = Field(default="", description="Base URL clients use to reach this server (for links).")
    max_body_mb: float = Field(default=20.0, description="Wildlife request body limit (MB).")
    max_raw_images_mb: float = Field(default=10.0, description="Wildlife combined raw image budget (MB).")
    max_batch_upload_mb: float = Field(default=500.0, description="Deepfake batch upload limit (MB).")
    max_detect_upload_mb: float = Field(default=150.0, description="Deepfake single upload limit (MB).")

    secret_key: str = Field(
        default="",
        description="Signs upload URLs; empty = generated once into data_dir/secret_key (set it on multi-node).",
    )
    upload_url_ttl_s: float = Field(default=3600.0, description="Lifetime of an async job's signed upload URL.")
    media_token_ttl_s: float = Field(
        default=3600.0,
        description="Lifetime of a secure upload's single-use media_token (POST /secure_uploads); the file is "
        "deleted when the token is used or, unused, at the first sweep after it expires.",
    )
    media_url_ttl_s: float = Field(
        default=900.0, description="Lifetime of a signed media/visualization link (what a browser opens)."
    )

    # --- billing and limits ---------------------------------------------------------
    billing_enabled: bool = Field(default=False, description="Charge credits; off = unlimited mode.")
    rate_limit_enabled: bool = Field(default=True, description="Enforce per-key rate limits.")
    rate_limit_inference: int = Field(default=300, description="Inference requests per minute per key.")
    rate_limit_reference: int = Field(default=300, description="Reference requests per minute per key.")
    rate_limit_usage: int = Field(default=120, description="Usage requests per minute per key.")
    result_ttl_days: float = Field(default=30.0, description="How long results and media are kept.")
    sweep_interval_s: float = Field(default=300.0, description="Expiry sweeper period.")

    # --- jobs -----------------------------------------------------------------------
    queue: Literal["local", "celery"] = Field(default="local", description="Job dispatch: in-process or Celery.")
    broker_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery broker URL.")
    workers: int = Field(default=2, description="In-process job worker threads (0 = none, use `sleuth worker`).")
    fair_workers: int = Field(
        default=1,
        description="Extra worker threads that only claim items of teams with nothing processing, so a small "
        "batch need not wait behind another team's large one (each in-process worker has them; 0 = none).",
    )
    max_queued_items: int = Field(
        default=20000, description="Job items waiting in all (pending + queued); more = 503 queue_full; 0 = no limit."
    )
    max_queued_items_per_team: int = Field(
        default=5000, description="Job items one team may have waiting; more = 503 queue_full; 0 = no limit."
    )
    job_thread_nice: int = Field(
        default=5,
        ge=0,
        le=19,
        description="OS nice value added to the threads that run job items (workers, inline `Prefer: wait` runs), "
        "so sync requests get the cores first (Linux; 0 = off).",
    )
    inline_runs: int = Field(
        default=2,
        description="`Prefer: wait` detects run in their request at most this many at a time; the others wait "
        "for a job worker (fair across teams).",
    )
    job_max_attempts: int = Field(default=3, description="Attempts per job item before it fails.")
    job_heartbeat_s: float = Field(default=10.0, description="Worker heartbeat period.")
    job_lease_s: float = Field(default=60.0, description="Item lease; a worker silent this long is presumed dead.")
    # --- scale-out (Celery dispatch) -------------------------------------------------
    celery_queue_prefix: str = Field(default="sleuth", description="Celery queue per job kind: <prefix>.<kind>.")
    celery_visibility_timeout_s: float = Field(
        default=7200.0, description="Broker redelivery timeout of an unacked item; must exceed the longest item."
    )
    celery_orphan_after_s: float = Field(
        default=900.0, description="Re-enqueue items queued this long (their message may be lost); 0 = never."
    )

    # --- outbound URLs (detect-url, callbacks) -------------------------------------
    url_allow_private: str = Field(
        default="",
        description="Comma-separated hosts exempt from the private-address block (tests, on-prem receivers).",
    )
    url_fetch_timeout_s: float = Field(default=20.0, description="Timeout for fetching media by URL.")
    webhook_timeout_s: float = Field(default=10.0, description="Timeout of one callback delivery.")
    webhook_max_attempts: int = Field(default=8, description="Callback deliveries before giving up.")
    webhook_backoff_s: float = Field(default=5.0, description="First retry delay; doubles each attempt.")

    # --- models ---
    classifier_pack: str = Field(
        default="coral",
        description="Species classifier: 'coral' (the stand-in pack), a catalog SpeciesNet release "
        "('speciesnet-4.0.3a', installed with `sleuth models pull`/`import`) or the path of a SpeciesNet model "
        "folder (info.json, ONNX classifier, labels, taxonomy, geofence).",
    )
    urban_classifier: str = Field(default="", description="The urban profile's classifier; empty = classifier_pack.")
    wildlife_detector: str = Field(
        default="",
        description="The default profile's detector (a catalog name: mdlite, mdv5a.0.0, mdv1000-redwood, ...); "
        "empty = mdlite. A MegaDetector must be installed (`sleuth models pull NAME`).",
    )
    urban_detector: str = Field(default="", description="The urban profile's detector; empty = yolox-nano-coco.")
    filter_detector: str = Field(
        default="", description="The detector of the detector-only filter endpoints; empty = each profile's."
    )
    detector_precision: Literal["auto", "int8", "fp32"] = Field(
        default="auto",
        description="MD-Lite graph: 'int8' (quantized; about 3x faster), 'fp32' (the upstream computation), or "
        "'auto': int8 on CPUs whose integer kernels cannot saturate (x86 with VNNI, ARM), else fp32. "
        "Accuracy of each: docs/performance.md.",
    )
    model_cache: Path | None = Field(default=None, description="Model cache dir; default data_dir/models.")
    model_mirror: Path | None = Field(default=None, description="Local mirror folder of model artefacts.")
    providers: str = Field(default="", description="ONNX Runtime providers, comma separated; empty = auto.")
    intra_op_threads: int = Field(default=0, description="ORT intra-op threads; 0 = number of cores.")
    max_batch_size: int = Field(default=8, description="Micro-batcher maximum batch size.")
    max_wait_ms: float = Field(default=5.0, description="Micro-batcher maximum wait to fill a batch.")
    max_queue: int = Field(default=256, description="Micro-batcher queue bound; full = 503.")
    compute_slots: int = Field(
        default=1,
        description="Model runs on the cores at once (the compute gate, sync requests first); 0 = no limit.",
    )
    compute_max_starve_s: float = Field(
        default=1.0,
        description="A job's model run waiting this long starts beside sync work (at most once per this long).",
    )
    heap_trim: bool = Field(
        default=True,
        description="Give the C heap's free pages back to the OS after job items (glibc malloc_trim, at most "
        "once a second): keeps a long-running server's RSS from creeping up.",
    )
    heap_mmap_threshold_kb: int = Field(
        default=256,
        ge=0,
        le=32768,
        description="Blocks of this many KiB or more get their own mmap and go back to the OS when freed (glibc "
        "mallopt; 0 = glibc's adjusting default, which lets large freed blocks fragment the heap).",
    )
    ort_cpu_arena: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="ONNX Runtime's CPU memory arena (keeps a session's peak activations for good): 'auto' = on "
        "for the wildlife models, off for the deepfake models (large per-item activations); 'on'/'off' for all.",
    )

    # How data_dir was chosen: "set" (argument, SLEUTH_DATA_DIR or the TOML file), "default" (the per-user
    # folder) or "legacy" (a ./data left by an older version). See data_dir_notices().
    _data_dir_origin: str = PrivateAttr(default="set")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        cfg = _config_file()
        if cfg is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=cfg))
        return tuple(sources)

    @field_validator("model_mirror", "model_cache", "storage_dir", mode="before")
    @classmethod
    def _empty_is_unset(cls, v: Any) -> Any:
        return None if v is None or (isinstance(v, str) and not v.strip()) else v

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        if "data_dir" not in self.model_fields_set:
            if _holds_sleuth_data(LEGACY_DATA_DIR):
                self.data_dir = LEGACY_DATA_DIR.resolve()
                self._data_dir_origin = "legacy"
            else:
                self._data_dir_origin = "default"
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.data_dir / 'sleuth.db').as_posix()}"
        if self.storage_dir is None:
            self.storage_dir = self.data_dir / "storage"
        if self.model_cache is None:
            self.model_cache = self.data_dir / "models"
        return self

    def signing_key(self) -> bytes:
        if self.secret_key:
            return self.secret_key.encode()
        path = self.data_dir / "secret_key"
        if not path.is_file():
            import secrets

            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(secrets.token_hex(32))
            try:
                os.link(tmp, path)  # first writer wins, atomically
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        return path.read_text().strip().encode()

    @property
    def data_dir_origin(self) -> str:
        return self._data_dir_origin

    def data_dir_notices(self) -> list[str]:
        """What a command line should say about the data folder before it uses it: a warning when an older
        version's ./data is used, and where data lives on the first run (the folder does not exist yet)."""
        out = []
        if self._data_dir_origin == "legacy":
            out.append(
                f"warning: using {self.data_dir}, the ./data folder of an older sleuth version (keys, results and "
                f"models are there). Data now lives in {default_data_dir()} unless SLEUTH_DATA_DIR says otherwise: "
                f"move the folder there, or set SLEUTH_DATA_DIR={self.data_dir}, to keep using it from any folder."
            )
        elif not self.data_dir.exists():
            out.append(
                f"sleuth: first run, data (database, uploads, results, models) will live in {self.data_dir} "
                "(set SLEUTH_DATA_DIR to choose another folder)"
            )
        return out

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def settings_table() -> list[dict[str, Any]]:
    """Every setting with its env var, default and description (for docs and `sleuth config`)."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.default
        if name == "data_dir":
            default = "per-user data dir"
        rows.append(
            {
                "env": f"SLEUTH_{name.upper()}",
                "default": default,
                "description": field.description or "",
            }
        )
    return rows
