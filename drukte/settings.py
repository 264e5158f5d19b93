"""The one frozen settings object, read from `DRUKTE_*` environment variables once per process."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REGISTRY = Path(__file__).resolve().parent.parent / "deploy" / "registry" / "flanders.yaml"


class Settings(BaseSettings):
    """Every knob of Drukte. The README's configuration table lists the same fields."""

    model_config = SettingsConfigDict(env_prefix="DRUKTE_", frozen=True, extra="forbid")

    kafka_url: str | None = Field(None, description="Kafka bootstrap, e.g. kafka://host:9092; unset = embedded")
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="how clients talk to Kafka; SASL_SSL for SCRAM over TLS")
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (with a SASL_* protocol)")
    kafka_sasl_username: str | None = Field(None, description="SASL user (with a SASL_* protocol)")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (with a SASL_* protocol)")
    kafka_ssl_cafile: Path | None = Field(None, description="CA bundle (PEM) that signed the brokers' certificates")
    redis_url: str | None = Field(None, description="Redis/Valkey URL, e.g. redis://host:6379/0; unset = embedded")
    registry: Path = Field(DEFAULT_REGISTRY, description="registry YAML of cities, zones, sensors")
    window_s: int = Field(300, ge=1, le=3600, description="publication window (s); divides an hour, clock-aligned")
    grace_s: int = Field(120, ge=0, le=86400, description="how long after a window ends readings still count")
    idle_s: int = Field(30, ge=1, le=3600, description="a source (per zone) without data this long advances by clock")
    tick_s: float = Field(1.0, gt=0, le=60, description="how often the worker sends clock ticks")
    batch_events: int = Field(1000, ge=1, le=100_000, description="most input messages the worker takes as one batch")
    batch_wait_ms: int = Field(20, ge=1, le=10_000, description="longest wait to fill a batch before processing it")
    live_s: int = Field(900, ge=1, le=86400, description="span of published windows summed in /live")
    spend_window_s: int = Field(3600, ge=60, le=3600, description="spending cell length (s); divides an hour")
    spend_grace_s: int = Field(300, ge=0, le=86400, description="how long after a spending window payments count")
    baseline_weeks: int = Field(8, ge=1, le=52, description="past same-type days in a usual band")
    k_min: int = Field(15, ge=1, description="fewest people a published window may show (P6)")
    min_sensors: int = Field(3, ge=1, description="fewest reporting sensors a published window needs (P7)")
    max_future_s: int = Field(300, ge=0, description="readings ending later than now + this are rejected")
    max_rate_per_s: int = Field(50, ge=1, description="more passages per sensor-second is an absurd count")
    partitions: int = Field(8, ge=1, le=256, description="partitions of Drukte's own topics")
    replication_factor: int = Field(1, ge=1, le=16, description="copies of each topic Drukte creates (3 on a cluster)")
    app_id: str = Field("drukte", pattern=r"^[a-z][a-z0-9_.-]*$", description="Faust app and group id")
    data_dir: Path = Field(Path(".drukte"), description="local state of worker and embedded stack")
    metrics_port: int = Field(9102, ge=0, le=65535, description="worker's Prometheus port; 0 = off")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port of the API")
    rate_limit_per_min: int = Field(600, ge=0, description="API requests a minute per client address; 0 = off")
    max_url_bytes: int = Field(2048, ge=256, description="longest request path + query the API accepts (414)")
    max_header_bytes: int = Field(8192, ge=1024, description="largest request headers the API accepts (431)")
    max_body_bytes: int = Field(16384, ge=0, description="largest request body the API accepts (413)")
    api_cache_ms: int = Field(500, ge=0, le=60_000,
                              description="how long the API reuses a live object it read from the store (ms); 0 = off")
    stale_s: int | None = Field(None, ge=1, description="data older than this is stale; unset: 2*window+grace+idle")
    single_record_batches: bool = Field(False, description="one record per produce batch (Tansu's offsets need it)")
    fast_groups: bool = Field(False, description="short Kafka group timeouts (tests, demo; not production)")
    log_level: str = Field("info", pattern=r"^(debug|info|warning|error)$", description="log level")

    @field_validator("kafka_url", "redis_url")
    @classmethod
    def _blank_is_unset(cls, v: str | None) -> str | None:
        return v or None

    @model_validator(mode="after")
    def _window_fits_day(self) -> Settings:
        if 3600 % self.window_s:
            msg = (
                f"DRUKTE_WINDOW_S={self.window_s} does not divide an hour (3600 s); "
                "pick e.g. 60, 300, 900 or 3600 so windows align to the clock"
            )
            raise ValueError(msg)
        if 3600 % self.spend_window_s:
            msg = f"DRUKTE_SPEND_WINDOW_S={self.spend_window_s} does not divide an hour (3600 s); pick 900 or 3600"
            raise ValueError(msg)
        if self.live_s % self.window_s:
            msg = f"DRUKTE_LIVE_S={self.live_s} must be a multiple of DRUKTE_WINDOW_S={self.window_s}"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _kafka_security_fits(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and (not self.kafka_sasl_username or self.kafka_sasl_password is None):
            msg = (f"DRUKTE_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                   "DRUKTE_KAFKA_SASL_USERNAME and DRUKTE_KAFKA_SASL_PASSWORD")
            raise ValueError(msg)
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password is not None):
            msg = (f"DRUKTE_KAFKA_SASL_USERNAME/PASSWORD are set but DRUKTE_KAFKA_SECURITY_PROTOCOL="
                   f"{self.kafka_security_protocol}; set it to SASL_SSL (or SASL_PLAINTEXT) to use them")
            raise ValueError(msg)
        if self.kafka_ssl_cafile is not None and not self.kafka_security_protocol.endswith("SSL"):
            msg = (f"DRUKTE_KAFKA_SSL_CAFILE is set but DRUKTE_KAFKA_SECURITY_PROTOCOL="
                   f"{self.kafka_security_protocol}; set it to SSL or SASL_SSL to use TLS")
            raise ValueError(msg)
        return self

    @property
    def ingest_group(self) -> str:
        """The footfall ingest's consumer group (`agents.ingest`): Faust's group (`app_id`) speaks Faust's
        assignor protocol, which a plain consumer cannot join."""
        return f"{self.app_id}-ingest"

    @property
    def zone_topic(self) -> str:
        """Footfall readings regrouped by zone, written by the ingest and read by the windows agent."""
        return f"{self.app_id}-footfall-byzone"

    @property
    def stale_after_s(self) -> int:
        return self.stale_s if self.stale_s is not None else 2 * self.window_s + self.grace_s + self.idle_s


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise `SettingsError` with a readable message on bad values."""
    from pydantic import ValidationError

    from drukte.errors import SettingsError

    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"  DRUKTE_{loc.upper()}: {msg}" if loc else f"  {msg}")
        text = "invalid configuration (fix the environment variable and start again):\n" + "\n".join(lines)
        raise SettingsError(text) from exc
