"""Settings read from the environment (and `.env`), one instance per app."""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from flask import current_app
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.versions import DEFAULT_LOOK, LOOK_CANDIDATES, LOOK_EXPANSION

DEFAULT_SECRET_KEY = "dev-insecure-secret-key"


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class DeviceChoice(StrEnum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class LogFormat(StrEnum):
    text = "text"
    json = "json"


class DuplicatePolicy(StrEnum):
    flag = "flag"  # store the photo and list what it duplicates (`duplicate_of`, GET /api/v1/duplicates)
    reject = "reject"  # refuse it: 409 on upload, a skipped row in an import


# Measured by bench/duplicates.py on clothing-small with the default model (efficientnet_lite0-imagenet,
# L2-normalised vectors): mirrored, cropped and recompressed copies fall below it, different products above.
DEFAULT_DUPLICATE_DISTANCE = 0.4
# The same bench for the copy descriptor (collections built since it exists): 1 - cosine of the best pair of
# thumbnail variants; on clothing-small and grocery-produce every edit of every photo falls below it (at most
# 0.0074), every pair of different products above (see the README).
DEFAULT_COPY_DISTANCE = 0.02


class Quantization(StrEnum):
    """How the 1000-d vector is searched: by its float32 originals, or by int8 copies in RAM whose best hits are
    scored again by the originals (binary copies lost half the top 10 on clustered 1000-d vectors: not offered).
    auto: int8 from COMPACT_FROM_PHOTOS photos (the catalog a collection is built for), else none."""

    auto = "auto"
    none = "none"
    int8 = "int8"


class VectorMemory(StrEnum):
    """Where a collection's original vectors live: RAM, or files the engine maps (the page cache keeps the hot
    ones). auto: disk from COMPACT_FROM_PHOTOS photos, else ram."""

    auto = "auto"
    ram = "ram"
    disk = "disk"


class ProductQuery(StrEnum):
    mean = "mean"  # one query with the mean of the product's photo vectors
    closest = "closest"  # every photo queries; a product counts by its closest photo


ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_\-]{1,64}")
ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?", re.IGNORECASE)
MIN_SECRET_LENGTH = 16
MIN_SECRET_DISTINCT = 6


def secret_weakness(value: str | None) -> str | None:
    """Why a secret is too easy to guess (without quoting any of it), or None."""
    if not value:
        return "is not set"
    if len(value) < MIN_SECRET_LENGTH:
        return f"is shorter than {MIN_SECRET_LENGTH} characters"
    if any(char.isspace() for char in value):
        return "contains whitespace"
    if len(set(value)) < MIN_SECRET_DISTINCT:
        return f"has fewer than {MIN_SECRET_DISTINCT} different characters"
    return None


class Settings(BaseSettings):
    """Everything the service reads from its environment.

    Unset values fall back to the embedded default: SQLite, Qdrant Edge and media
    under `VAR_DIR`, tasks run in-process.
    """

    # hide_input_in_errors: a refused secret is never printed, not even in part.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True)

    environment: Environment = Environment.development
    log_format: LogFormat = LogFormat.text
    var_dir: Path = Path("var")
    # These three default to places under VAR_DIR (see _embedded_defaults).
    database_url: str = ""
    qdrant_path: Path = Path()
    media_root: Path = Path()
    redis_url: str | None = None
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    qdrant_collection: str = "products"
    admin_token: str | None = None
    secret_key: str = DEFAULT_SECRET_KEY
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_mb: float = Field(default=20, gt=0)
    max_image_pixels: int = Field(default=40_000_000, gt=0)
    # Longer side over shorter side: bounds the resize for embedding as the pixel limit bounds the decode.
    max_aspect_ratio: float = Field(default=10.0, ge=1)
    max_images_per_request: int = Field(default=20, gt=0)
    embed_batch_size: int = Field(default=32, gt=0)
    # Abuse limits per client address (the `limits` notation: N/second|minute|hour).
    rate_limits_enabled: bool = True
    # Proxies in front that set X-Forwarded-For/-Proto/-Host (Werkzeug's ProxyFix trusts this many hops): the
    # client address that rate limits and logs use. 0 (default): the connection's address, headers ignored.
    trusted_proxies: int = Field(default=0, ge=0, le=5)
    rate_limit_search: str = "60/minute"  # POST /search embeds a photo: about a second of CPU each
    # POST /api/v1/events per address: a page view sends an impression, a click one more (shoppers behind one NAT).
    rate_limit_events: str = "600/minute"
    # Shopper events older than this are deleted by the hourly sweep.
    events_retention_days: int = Field(default=365, ge=1, le=3650)
    rate_limit_auth_failures: str = "10/minute"  # wrong admin tokens, before every write is refused
    # The model a new installation embeds with until another is activated: a built-in ImageNet model
    # (efficientnet_lite0-imagenet, efficientnet_lite2-imagenet, resnet50-imagenet) or `untrained` (tests).
    default_model: str = "efficientnet_lite0-imagenet"
    embed_image_size: int = Field(default=224, ge=32)  # the untrained network's input size
    untrained_seed: int = 0
    device: DeviceChoice = DeviceChoice.auto
    product_query: ProductQuery = ProductQuery.mean
    hnsw_ef: int = Field(default=64, ge=8, le=4096)
    # How a new collection keeps its vectors (a collection keeps what it was built with: a reindex applies a
    # change). See the README's capacity table.
    vector_quantization: Quantization = Quantization.auto
    vector_memory: VectorMemory = VectorMemory.auto
    quantization_oversampling: float = Field(default=2.0, ge=1.0, le=16.0)
    hnsw_m: int = Field(default=16, ge=4, le=128)
    hnsw_ef_construct: int = Field(default=100, ge=8, le=4096)
    # The Qdrant server's collections (QDRANT_URL): shards, copies of each, and how many copies confirm a write.
    qdrant_shards: int = Field(default=1, ge=1, le=256)
    qdrant_replicas: int = Field(default=1, ge=1, le=16)
    qdrant_write_consistency: int = Field(default=1, ge=1, le=16)
    # How long a serving process answers from the live collections it last read before reading them again; a
    # switch made on this host (VAR_DIR shared) is seen at once. 0: read them on every query.
    live_check_s: float = Field(default=1.0, ge=0, le=60)
    # Similar-items calls computed at once by a serving process (backend/core/turns.py); 0: no limit.
    # Default: 1 on the embedded store (its searches hold the GIL), no limit on the Qdrant server.
    similar_concurrency: int | None = Field(default=None, ge=0, le=256)
    # The indexing pipeline (workers, retries, sweep). Times in seconds.
    task_soft_time_limit_s: int = Field(default=300, ge=5)
    broker_visibility_timeout_s: int = Field(default=3600, ge=30)
    task_max_retries: int = Field(default=5, ge=0, le=50)
    retry_backoff_s: float = Field(default=2.0, gt=0)
    retry_backoff_max_s: float = Field(default=120.0, gt=0)
    max_attempts: int = Field(default=3, ge=1, le=100)
    pending_stale_s: int = Field(default=600, ge=1)
    # An import or a reindex build whose process died: failed (dropped) by the sweep once its process is gone
    # (same host), or once it has not moved for DEAD_WORK_S (another host); never within the grace of a move.
    dead_work_s: int = Field(default=600, ge=1)
    dead_work_grace_s: int = Field(default=30, ge=0)
    # A worker's claim on the photos it embeds, renewed before each batch: a worker that died (on any
    # host) lets its photos go this long after its last batch began; the sweep then re-enqueues them.
    claim_lease_s: int = Field(default=60, ge=10)
    # A media file no row owns is removed by the full sweep once it is this old: older than any request
    # that writes a photo and then commits (a crash between the two leaves such a file).
    media_orphan_grace_s: int = Field(default=900, ge=60)
    sweep_interval_s: float = Field(default=60.0, gt=0)
    sweep_full_interval_s: float = Field(default=3600.0, gt=0)
    # The nice value of the serving process's own background threads (an import, a reindex, the sweep):
    # they take the CPU the requests leave, so a reindex does not slow the shoppers' answers. 0: equal.
    background_nice: int = Field(default=10, ge=0, le=19)
    worker_concurrency: int | None = Field(default=None, ge=1)
    # A worker's own /metrics (its pool processes added up; needs PROMETHEUS_MULTIPROC_DIR): 0 serves none.
    worker_metrics_port: int = Field(default=0, ge=0, le=65535)
    worker_metrics_host: str = "127.0.0.1"
    flower_basic_auth: str | None = None
    flower_address: str = "127.0.0.1"
    flower_port: int = Field(default=5555, ge=1, le=65535)
    # Flower's address as the admin's browser reaches it (the status page links there); default: address and port.
    flower_url: str | None = None
    admin_session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Attribute keys the similar-items calls filter on (`attr.colour=red`), comma-separated: each gets a
    # payload index in the vector store. Changing it: `lookalike sweep --full` copies the values onto the points.
    filter_attributes: str = ""
    # Duplicate photos across products: flag them (default) or refuse them with 409.
    duplicates: DuplicatePolicy = DuplicatePolicy.flag
    # The vector distance below which a photo of another product counts as a near-copy; the default is
    # measured for the default model (bench/duplicates.py measures it for another one).
    duplicate_distance: float = Field(default=DEFAULT_DUPLICATE_DISTANCE, ge=0)
    # The similar-items calls' `look` when they do not say (0: the 1000-d vector alone), how many of the
    # nearest points by the kind vector the look re-ranks, and how many of its best hits expand the query
    # (0: none). Chosen by `lookalike evaluate` (see the README).
    look_default: float = Field(default=DEFAULT_LOOK, ge=0, le=1)
    look_candidates: int = Field(default=LOOK_CANDIDATES, ge=10, le=1000)
    look_expansion: int = Field(default=LOOK_EXPANSION, ge=0, le=10)
    # The same by the copy descriptor, in collections that have it (1 - cosine similarity, 0..2).
    copy_distance: float = Field(default=DEFAULT_COPY_DISTANCE, ge=0, le=2)
    # Feeds through the API: photos already on the server under this folder, when no zip is sent.
    import_dir: Path | None = None
    # The largest POST /api/v1/imports body (a feed and a zip of photos).
    import_max_mb: float = Field(default=2048, gt=0)
    # The shop's own sites, comma-separated origins (https://shop.example), whose pages may call the public read
    # calls and the events call from the browser (the widget); empty: no cross-origin access. Writes never.
    allowed_origins: str = ""

    @field_validator("filter_attributes")
    @classmethod
    def _attribute_keys(cls, value: str) -> str:
        keys = [key.strip() for key in value.split(",") if key.strip()]
        bad = [key for key in keys if not ATTRIBUTE_KEY.fullmatch(key)]
        if bad:
            raise ValueError(f"FILTER_ATTRIBUTES: {bad[0]!r} is not a key of letters, digits, _ or - (1-64)")
        return ",".join(dict.fromkeys(keys))

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        origins = [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        for origin in origins:
            if not ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"ALLOWED_ORIGINS: {origin!r} is not an origin: scheme://host[:port], http or https, no path"
                )
        return ",".join(dict.fromkeys(origin.lower() for origin in origins))

    @model_validator(mode="before")
    @classmethod
    def _embedded_defaults(cls, data: Any) -> Any:
        """Unset places fall under VAR_DIR: the SQLite file, the Qdrant Edge shards, the media."""
        if not isinstance(data, dict):
            return data
        var_dir = Path(data.get("var_dir") or "var")
        defaults = {
            "database_url": f"sqlite:///{(var_dir / 'lookalike.db').resolve()}",
            "qdrant_path": var_dir / "qdrant",
            "media_root": var_dir / "media",
        }
        return data | {key: value for key, value in defaults.items() if data.get(key) is None}

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        # Plain postgres URLs would pick psycopg2, which we do not install.
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @model_validator(mode="after")
    def _consistent_and_secret(self) -> Settings:
        if self.qdrant_write_consistency > self.qdrant_replicas:
            raise ValueError(
                f"QDRANT_WRITE_CONSISTENCY ({self.qdrant_write_consistency}) cannot exceed QDRANT_REPLICAS"
                f" ({self.qdrant_replicas}): no write could ever be confirmed by that many copies"
            )
        if self.task_time_limit_s >= self.broker_visibility_timeout_s:
            raise ValueError(
                f"BROKER_VISIBILITY_TIMEOUT_S ({self.broker_visibility_timeout_s}) must exceed the task time limit"
                f" ({self.task_time_limit_s} = TASK_SOFT_TIME_LIMIT_S + 30): Redis would hand a running task"
                " to a second worker"
            )
        if self.retry_backoff_max_s >= self.broker_visibility_timeout_s:
            raise ValueError(
                f"RETRY_BACKOFF_MAX_S ({self.retry_backoff_max_s}) must stay below BROKER_VISIBILITY_TIMEOUT_S"
                f" ({self.broker_visibility_timeout_s}): a retry waiting longer would be delivered twice"
            )
        if self.flower_basic_auth is not None:
            user, _, password = self.flower_basic_auth.partition(":")
            if not user.strip() or not password.strip():
                raise ValueError("FLOWER_BASIC_AUTH must be user:password, neither of them empty")
        if self.environment is Environment.production:
            secret_key = None if self.secret_key == DEFAULT_SECRET_KEY else self.secret_key
            for name, value in (("SECRET_KEY", secret_key), ("ADMIN_TOKEN", self.admin_token)):
                weakness = secret_weakness(value)
                if weakness:
                    raise ValueError(f"{name} {weakness}: set a random value of 16+ characters in production")
        return self

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        """The declared filter attributes, in the order given."""
        return tuple(key for key in self.filter_attributes.split(",") if key)

    @property
    def origins(self) -> frozenset[str]:
        """ALLOWED_ORIGINS as a set, for the CORS check."""
        return frozenset(origin for origin in self.allowed_origins.split(",") if origin)

    @property
    def import_max_bytes(self) -> int:
        return int(self.import_max_mb * 1024 * 1024)

    @property
    def imports_dir(self) -> Path:
        """Where feeds sent through the API wait for their task (beside the media: workers read both)."""
        return self.media_root.parent / "imports"

    @property
    def embedded_index(self) -> bool:
        return self.qdrant_url is None

    @property
    def similar_turns(self) -> int:
        """How many similar-items calls a serving process computes at once; 0: as many as it has threads."""
        if self.similar_concurrency is not None:
            return self.similar_concurrency
        return 1 if self.embedded_index else 0

    @property
    def tasks_in_process(self) -> bool:
        return self.redis_url is None

    @property
    def task_time_limit_s(self) -> int:
        """The hard limit: the worker process is killed past it (the soft limit raises first)."""
        return self.task_soft_time_limit_s + 30

    @property
    def search_body_bytes(self) -> int:
        """The largest /search request: one photo at its limit, and its multipart framing."""
        return self.max_upload_bytes + 64 * 1024

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def resolve_admin_token(self) -> tuple[str, bool]:
        """The admin token, and whether it was made up here for development.

        A made-up token is kept under VAR_DIR so that it survives restarts.
        """
        if self.admin_token:
            return self.admin_token, False
        path = self.var_dir / "dev-admin-token"
        if path.exists():
            return path.read_text().strip(), True
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_urlsafe(24)
        path.write_text(token + "\n")
        path.chmod(0o600)
        return token, True


def current_settings() -> Settings:
    """The settings of the app serving this request or running this command or task."""
    settings: Settings = current_app.config["SETTINGS"]
    return settings
