"""Headwater's settings: one pydantic-settings model read from ``HEADWATER_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from headwater.allowlists import check_allow_entry, check_env_allowlist_entry, check_host_pattern
from headwater.settings.jobs import JobSettings

__all__ = ["Settings", "get_settings"]

LogLevel = Literal["debug", "info", "warning", "error", "critical"]
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")
# List settings written in the environment as comma-separated values (NoDecode: not as JSON).
_COMMA_SEPARATED = (
    "allowed_hosts",
    "cors_origins",
    "trusted_proxies",
    "egress_allow",
    "egress_file_dirs",
    "secrets_allowed_env",
    "secrets_allowed_dirs",
    "jobs_pass_env",
    "auth_admins",
    "jobs_user_limits",
)


class Settings(JobSettings):
    """Every setting Headwater reads; docs/reference/settings.md lists them, generated from these fields."""

    # hide_input_in_errors: a refused setting is named, never echoed (a URL's password, a key's bytes).
    model_config = SettingsConfigDict(env_prefix="HEADWATER_", env_file=None, extra="ignore", hide_input_in_errors=True)

    env: Literal["development", "production"] = Field(
        default="development",
        description="`production` refuses unsafe defaults: the embedded SQLite file, auto-migration, no secrets "
        "key, and no HEADWATER_ALLOWED_HOSTS.",
    )
    data_dir: Path = Field(default=Path(".headwater"), description="Where embedded state lives.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL. Default: sqlite:///<data_dir>/headwater.db.",
    )
    host: str = Field(default="127.0.0.1", description="Address `headwater serve` binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port `headwater serve` binds.")
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Processes `headwater serve` answers requests with, sharing its socket. With more than one, "
        "the shared background services (sync scheduler, search indexer, job reaper, retention, job worker) run "
        "in one more process of their own instead of as threads of the server (docs/operate/processes.md).",
    )
    serve_services: bool = Field(
        default=True,
        description="Run the shared background services with `headwater serve`; false for API-only replicas "
        "whose services run in `headwater services` elsewhere.",
    )
    log_level: LogLevel = Field(default="info", description="Log level of the server and CLI.")
    # Egress: where the server and its workers may connect and read files (docs/security/egress.md).
    egress_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses, networks (CIDR) and host names, comma-separated, that server-side requests "
        "(application files, source connections) may reach although they are loopback, link-local, private or "
        "otherwise not global, e.g. `10.20.0.0/16,metastore.internal`. Empty: only global addresses.",
    )
    egress_file_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories (absolute, comma-separated) whose files applications may name as a local path "
        "or file:// URI and sources may name (SQLite catalogs, TLS files). Empty: no local files.",
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Migrate on start. Default: only for the embedded SQLite database.",
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, description="Largest request body accepted; larger gets 413."
    )
    # Cross-site protection, host checking, the rate limit and GraphQL's limits (docs/security/crosssite.md).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(LOOPBACK_HOSTS),
        description="Host names (any port) the server answers to, comma-separated; `*.example.com` matches "
        "subdomains; `*` turns the check off. Default: loopback only (localhost, 127.0.0.1, [::1]); production "
        "must set it.",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port], comma-separated) whose pages may call the API from a browser "
        "(CORS, and writes from another origin). Empty: CORS off, cross-site browser writes refused.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Addresses or networks (comma-separated) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed. Empty: never believed; the peer's address is the client's.",
    )
    rate_limit_per_second: float = Field(
        default=50.0, ge=0, description="Requests per second each client may sustain (token bucket); 0 turns off."
    )
    rate_limit_burst: int = Field(
        default=200, ge=0, description="Requests a client may send at once above that rate; 0 turns the limit off."
    )
    rate_limit_max_clients: int = Field(
        default=10_000, ge=1, description="Clients whose buckets are kept at once; the longest idle go first."
    )
    graphql_max_cost: int = Field(
        default=1_000_000,
        ge=1,
        description="Most objects a GraphQL query may return by its worst-case estimate (a list counts its "
        "first/maxNodes argument or the server's maximum, nested lists multiply); costlier queries are refused "
        "before they run. A page of 100 datasets with their fields is estimated at 500,101.",
    )
    graphql_max_result_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest GraphQL answer sent (serialised bytes)."
    )
    graphql_time_budget: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds a GraphQL request may run before it is stopped."
    )
    db_pool_size: int = Field(
        default=10,
        ge=1,
        description="Connections kept per process; requests hold at most this less two (at least one) at once (background "
        "services may overflow by as many again).",
    )
    db_echo: bool = Field(default=False, description="Log every SQL statement (debugging only).")
    db_prepared_statements: bool = Field(
        default=True,
        description="Prepare frequent statements on the PostgreSQL server; false behind a PgBouncer in "
        "transaction pooling mode.",
    )
    cache_enabled: bool = Field(
        default=True,
        description="Serve unchanged datasets from an in-process cache invalidated by the change feed.",
    )
    cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="Memory bound of that cache.")
    cache_poll_interval: float = Field(
        default=0.25, gt=0, le=60, description="Seconds between reads of the change feed for other writers' changes."
    )
    search_backend: Literal["sql", "elasticsearch"] = Field(
        default="sql",
        description="Where search documents live: the catalog database's full-text index, or Elasticsearch.",
    )
    search_indexer_enabled: bool = Field(
        default=True, description="Run the search indexer (fed by the change outbox) inside the server."
    )
    search_index_interval: float = Field(
        default=1.0, gt=0, le=3600, description="Seconds between the indexer's reads of the change outbox."
    )
    search_index_columns: bool = Field(
        default=True, description="Index every column as a searchable document of its own (type=column)."
    )
    search_batch_size: int = Field(default=200, ge=1, le=1000, description="Change events (or datasets) per batch.")
    search_concurrency: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Searches one server process runs at once (0: no bound); later ones wait their turn, first "
        "come first served, so a burst of clients queues instead of slowing every search alike.",
    )
    search_candidate_cap: int = Field(
        default=500, ge=50, le=20_000, description="sql backend: documents a broad relevance query ranks and counts."
    )
    elasticsearch_url: str = Field(
        default="http://127.0.0.1:9200", description="Elasticsearch endpoint(s), comma-separated."
    )
    elasticsearch_index: str = Field(
        default="headwater",
        pattern=r"^[a-z0-9][a-z0-9_\-]{0,80}$",
        description="Alias searched; versioned indices are named <alias>-v<timestamp> behind it.",
    )
    elasticsearch_api_key: SecretStr | None = Field(default=None, description="Elasticsearch API key.")
    elasticsearch_username: str | None = Field(default=None, description="Elasticsearch basic-auth user.")
    elasticsearch_password: SecretStr | None = Field(default=None, description="Elasticsearch basic-auth password.")
    elasticsearch_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds per Elasticsearch request.")
    # Source secrets: encryption at rest and the env:/file: references that may resolve (docs/security/secrets.md)
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) that encrypt source secrets, comma-separated: the first encrypts, all decrypt "
        "(`headwater secrets generate-key` makes one). Required in production unless HEADWATER_SECRETS_KEY_FILE is set.",
    )
    secrets_key_file: Path | None = Field(
        default=None,
        description="A file holding the Fernet key(s), one a line, the first encrypting. Default for the embedded "
        "database: <data_dir>/secrets.key, generated with mode 0600.",
    )
    secrets_allowed_env: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables a source secret may name as env:NAME, comma-separated: names, or "
        "prefixes ending in * or _ (ICEBERG_*). Empty: none. HEADWATER_ variables never resolve.",
    )
    secrets_allowed_dirs: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Directories a source secret may read as file:/path (symlinks and .. resolved first), "
        "comma-separated absolute paths. Empty: none.",
    )

    sync_scheduler_enabled: bool = Field(
        default=True,
        description="Run periodic syncs of sources whose config sets sync_interval_seconds, inside the server.",
    )
    sync_poll_interval: float = Field(
        default=15.0, gt=0, le=3600, description="Seconds between the server's checks for sources due a sync."
    )
    sync_lease_seconds: int = Field(
        default=300,
        ge=10,
        le=86_400,
        description="How long a sync's claim on its source lasts without renewal (renewed every page).",
    )

    # Storage retention (docs/operate/storage.md): the raw event log, runs and the change outbox are trimmed.
    retention_enabled: bool = Field(
        default=True, description="Run the retention loop inside the server (`headwater retention run` runs it once)."
    )
    retention_interval: float = Field(
        default=300.0, gt=0, le=86_400, description="Seconds between the retention loop's passes."
    )
    retention_chunk_rows: int = Field(
        default=1000, ge=10, le=50_000, description="Rows one retention DELETE removes (one short transaction each)."
    )
    retention_pass_rows: int = Field(
        default=500_000,
        ge=1000,
        description="Most rows of each table one retention pass removes (the rest wait for the next pass).",
    )
    lineage_events_retention_days: float = Field(
        default=30.0,
        ge=0,
        le=36_500,
        description="Days a raw OpenLineage event is kept in the event log after it was received; 0 keeps them "
        "forever. The lineage graph and its provenance made from the events stay. A duplicate of an event already "
        "trimmed is no longer recognised as one and is applied again.",
    )
    lineage_runs_retention_days: float = Field(
        default=30.0,
        ge=0,
        le=36_500,
        description="Days a run is kept after its last event (its end, for a finished run); 0 keeps them forever. "
        "Each job's latest runs (HEADWATER_LINEAGE_RUNS_KEPT_PER_JOB) are kept whatever their age.",
    )
    lineage_runs_kept_per_job: int = Field(
        default=10, ge=0, le=100_000, description="Latest runs of each job that run retention never removes."
    )
    outbox_retention_days: float = Field(
        default=7.0,
        ge=0,
        le=36_500,
        description="Days a change event is kept at least, even once every registered consumer (the search "
        "indexers) has passed it, so a consumer that was down can catch up; 0 keeps the outbox forever.",
    )
    outbox_retention_max_days: float = Field(
        default=30.0,
        ge=0,
        le=36_500,
        description="Days after which a change event is removed even if a registered consumer has not passed it "
        "(that consumer then rebuilds from the catalog); 0: never without every consumer past it.",
    )

    # Identity and authorization (docs/security/identity.md)
    auth: Literal["auto", "on", "none"] = Field(
        default="auto",
        description="`auto`: authentication is on when OIDC is configured; with none configured Headwater runs as "
        "one local admin on a loopback address and refuses to start on any other. `on`: API tokens (and OIDC if "
        "configured) are required. `none`: everyone is the local admin, on purpose, on any address.",
    )
    auth_admins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Principals granted the admin role from the start, comma-separated `user:NAME`, "
        "`service:NAME` or `group:NAME` (the first admins, before any role binding exists).",
    )
    auth_default_role: Literal["none", "viewer", "editor", "operator", "admin"] = Field(
        default="viewer", description="The role every authenticated principal has without a binding."
    )
    auth_cache_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="How long a verified token's principal is reused without asking the database again (a "
        "revocation takes effect in this process at once, in other processes at the next poll of the auth epoch, "
        "and within this time if that poll fails).",
    )
    auth_revocation_poll_seconds: float = Field(
        default=1.0,
        ge=0.1,
        le=60,
        description="How often each server reads the auth epoch, which every revocation (a token, a service "
        "account, a role binding) moves, to forget its cached credentials: how long a revocation made by another "
        "process or the CLI takes to hold here.",
    )
    oidc_issuer: str | None = Field(
        default=None, description="The OpenID Connect issuer URL; its discovery document names the JWKS."
    )
    oidc_audience: str | None = Field(
        default=None, description="The `aud` bearer JWTs must carry. Default: the OIDC client id."
    )
    oidc_client_id: str | None = Field(default=None, description="The OIDC client id of the UI's sign-in.")
    oidc_client_secret: SecretStr | None = Field(default=None, description="The OIDC client secret of the UI.")
    oidc_user_claim: str = Field(
        default="preferred_username", description="The claim naming the user (falls back to `sub`)."
    )
    oidc_groups_claim: str = Field(default="groups", description="The claim listing the user's groups.")
    oidc_scopes: str = Field(default="openid profile email", description="Scopes the UI's sign-in asks for.")
    oidc_redirect_uri: str | None = Field(
        default=None,
        description="The sign-in's callback URL registered with the provider (https://HOST/ui/auth/callback). "
        "Default: built from the request's own scheme and host.",
    )
    session_max_age: int = Field(
        default=8 * 3600, ge=60, le=30 * 86_400, description="Seconds a UI sign-in lasts before signing in again."
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs the UI's session cookie. Default: derived from the secrets key, or random "
        "per process (sign-ins then end when the server restarts).",
    )

    @field_validator(*_COMMA_SEPARATED, mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("egress_file_dirs", "secrets_allowed_dirs")
    @classmethod
    def _check_absolute_dirs(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        for directory in value:
            if not directory.is_absolute():
                raise ValueError(
                    f"HEADWATER_{str(info.field_name).upper()}: {str(directory)!r} is not an absolute path"
                )
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        return [check_host_pattern(host) for host in value]

    @field_validator("egress_allow")
    @classmethod
    def _check_egress_allow(cls, value: list[str]) -> list[str]:
        return [check_allow_entry(entry) for entry in value]

    @field_validator("secrets_allowed_env")
    @classmethod
    def _check_allowed_env(cls, value: list[str]) -> list[str]:
        return [check_env_allowlist_entry(entry) for entry in value]

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: list[str]) -> list[str]:
        for origin in value:
            if origin == "*" or not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port], e.g. https://app.example.com"
                )
        return [origin.lower() for origin in value]

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_log_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("auth_admins")
    @classmethod
    def _check_admins(cls, value: list[str]) -> list[str]:
        for entry in value:
            kind, _, name = entry.partition(":")
            if kind not in ("user", "service", "group") or not name:
                raise ValueError(f"HEADWATER_AUTH_ADMINS: {entry!r} is not user:NAME, service:NAME or group:NAME")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production_defaults(self) -> Settings:
        # Every unsafe default is named at once, so a deploy is not fixed one restart at a time.
        if self.env != "production":
            return self
        problems = []
        if self.database_url is None:
            problems.append(
                "HEADWATER_DATABASE_URL must be set to a PostgreSQL URL (the embedded SQLite default is for "
                "development only)"
            )
        if self.auto_migrate:
            problems.append(
                "HEADWATER_AUTO_MIGRATE=true is refused: run `headwater db upgrade` as a deliberate deploy step"
            )
        if self.secrets_key is None and self.secrets_key_file is None:
            problems.append(
                "HEADWATER_SECRETS_KEY or HEADWATER_SECRETS_KEY_FILE must be set: source secrets are encrypted with "
                "it (make a key with `headwater secrets generate-key`)"
            )
        if "allowed_hosts" not in self.model_fields_set:
            problems.append(
                "HEADWATER_ALLOWED_HOSTS must name the host names clients use to reach this server (the default "
                "answers loopback names only; `*` turns the check off)"
            )
        if problems:
            raise ValueError("HEADWATER_ENV=production refuses unsafe defaults: " + "; ".join(problems))
        return self

    @property
    def auth_configured(self) -> bool:
        """Whether requests must authenticate (``auth=on``, or ``auto`` with an OIDC issuer)."""
        return self.auth == "on" or (self.auth == "auto" and self.oidc_issuer is not None)

    @property
    def resolved_database_url(self) -> str:
        """The database URL in effect: the configured one, or the embedded SQLite file."""
        if self.database_url:
            return normalise_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'headwater.db').resolve()}"

    @property
    def is_embedded_database(self) -> bool:
        """True when Headwater runs on its own SQLite file rather than a configured server."""
        return self.database_url is None

    @property
    def resolved_jobs_archive_dir(self) -> Path:
        """Where archived job logs go."""
        return self.jobs_archive_dir or self.data_dir / "jobs-archive"

    @property
    def should_run_job_worker(self) -> bool:
        """Whether the server runs an in-process job worker."""
        if self.jobs_worker_enabled is not None:
            return self.jobs_worker_enabled
        return self.is_embedded_database

    @property
    def should_auto_migrate(self) -> bool:
        """Whether the server migrates the database itself on start."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.is_embedded_database


def normalise_database_url(url: str) -> str:
    """Point bare ``postgresql://`` URLs at psycopg 3, the driver Headwater ships with."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
