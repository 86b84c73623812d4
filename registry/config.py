"""One settings object, read from the environment (prefix ``REGISTRY_``) or a ``.env`` file."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

REPO_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    development = "development"
    test = "test"
    production = "production"


class CipherName(StrEnum):
    aes_256_gcm = "aes-256-gcm"
    sm4_gcm = "sm4-gcm"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", env_file=".env", extra="ignore")

    environment: Environment = Environment.development
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in data_dir"
    )
    key_file: Path | None = Field(default=None, description="default: data_dir/registry.key")
    policy_dir: Path = REPO_ROOT / "policies"

    # The offices' time zone: what "today" means for dates (arrivals, pledges, check-ins).
    timezone: str = "Asia/Shanghai"

    cipher: CipherName = CipherName.aes_256_gcm
    # Truncated blind indexes (see security/crypto.py): 2**bits buckets, so several records of
    # a large county share a bucket and a leaked index key no longer enumerates the ID space.
    blind_index_bits: int = Field(default=16, ge=8, le=63)

    # Days after arrival within which a resident must be registered, unless a jurisdiction
    # (or an ancestor) sets its own.
    registration_deadline_days: int = Field(default=3, ge=0, le=365)
    # Aftercare (帮教) lasts this many years from release unless a case says otherwise.
    aftercare_years: int = Field(default=5, ge=1, le=20)
    # Signed audit checkpoints: after this many events, or this many minutes, whichever first.
    audit_checkpoint_events: int = Field(default=1000, ge=1)
    audit_checkpoint_minutes: int = Field(default=60, ge=1)
    # The coordinator-staffing ratio applies to the urban area: the codes (and their subtrees)
    # it covers, comma-separated; empty: everywhere.
    staffing_areas: str = Field(default="", pattern=r"^(\d{6,15}(,\d{6,15})*)?$")

    token_idle_minutes: int = Field(default=15, ge=1)
    token_lifetime_hours: int = Field(default=8, ge=1)
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    # OWASP argon2id baseline; tests lower these.
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19 * 1024, ge=8)
    argon2_parallelism: int = Field(default=1, ge=1)

    # Backups (`registry backup`): where they go (default data_dir/backups), and how many of
    # each kind are kept. Keystore backups are kept on a shorter cycle: once the last one taken
    # before an erasure is deleted, no backup can restore the erased person (README).
    backup_dir: Path | None = None
    data_backups_keep: int = Field(default=30, ge=1)
    keystore_backups_keep: int = Field(default=7, ge=1)

    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=256 << 20, ge=1024)  # ledger files (POST /imports)
    purpose_max_length: int = 200

    # Benchmarks only: store personal data in the clear and skip the audit chain, to measure
    # what the privacy core costs. Refused outside the test environment.
    bench_plaintext: bool = False

    @model_validator(mode="after")
    def _check(self) -> Settings:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"REGISTRY_TIMEZONE: unknown time zone {self.timezone!r}") from exc
        if self.bench_plaintext and self.environment != Environment.test:
            raise ValueError(
                "REGISTRY_BENCH_PLAINTEXT is only allowed with REGISTRY_ENVIRONMENT=test"
            )
        if self.environment == Environment.production and self.key_file is None:
            raise ValueError("REGISTRY_KEY_FILE must be set explicitly in production")
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'registry.sqlite3').as_posix()}"

    @property
    def display_database_url(self) -> str:
        """The database URL without its password, for messages."""
        return make_url(self.resolved_database_url).render_as_string(hide_password=True)

    @property
    def resolved_backup_dir(self) -> Path:
        return self.backup_dir or self.data_dir / "backups"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "registry.key"


@lru_cache
def get_settings() -> Settings:
    return Settings()
