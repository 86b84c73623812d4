"""One settings object, read from the environment (prefix ``REGISTRY_``) or a ``.env`` file."""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, model_validator
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


class KeyProviderName(StrEnum):
    local = "local"  # the key file
    pkcs11 = "pkcs11"  # a hardware security module


class CookieSecure(StrEnum):
    auto = "auto"  # Secure in production, and over HTTPS in any environment
    true = "true"
    false = "false"


class Settings(BaseSettings):
    # Inputs stay out of validation errors: they hold the PKCS#11 PIN and database passwords.
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)

    environment: Environment = Environment.development
    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in data_dir"
    )
    key_file: Path | None = Field(default=None, description="default: data_dir/registry.key")
    policy_dir: Path = REPO_ROOT / "policies"

    # Where the key-encryption keys live: the key file, or a hardware security module over
    # PKCS#11 (README: "Keys in a hardware security module"). The PIN comes from
    # REGISTRY_PKCS11_PIN or a file (mode 0600) named by REGISTRY_PKCS11_PIN_FILE.
    key_provider: KeyProviderName = KeyProviderName.local
    pkcs11_module: Path | None = None
    pkcs11_token_label: str | None = Field(default=None, min_length=1, max_length=32)
    pkcs11_pin: SecretStr | None = None
    pkcs11_pin_file: Path | None = None
    pkcs11_key_label_prefix: str = Field(default="registry-", pattern=r"^[A-Za-z0-9._:-]{1,32}$")

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
    # The auditors' reports: the longest period one report covers, and the most events one
    # report (or export) lists — counts always cover every event.
    audit_report_max_days: int = Field(default=366, ge=1, le=3660)
    audit_report_max_events: int = Field(default=10_000, ge=10)
    # The anomaly report. Working hours are local (``timezone``): reads outside them, or on a
    # Saturday or Sunday when ``audit_weekends_off`` is set, are at unusual hours.
    audit_work_start_hour: int = Field(default=8, ge=0, le=23)
    audit_work_end_hour: int = Field(default=19, ge=1, le=24)
    audit_weekends_off: bool = True
    # A user's reads are far above their own baseline (the mean of the previous
    # ``audit_baseline_periods`` periods of the same length) or their peers' (the median of
    # the others of the same role) when more than ``factor`` times it, and at least
    # ``audit_min_reads``.
    audit_min_reads: int = Field(default=20, ge=1)
    audit_baseline_periods: int = Field(default=4, ge=1, le=52)
    audit_baseline_factor: float = Field(default=3.0, gt=1)
    audit_peer_factor: float = Field(default=3.0, gt=1)
    # At least this many reads at unusual hours; this many single-record reads without a
    # purpose of records the user never wrote; this many denials — in one period.
    audit_off_hours_reads: int = Field(default=5, ge=1)
    audit_unexplained_reads: int = Field(default=10, ge=1)
    audit_denials: int = Field(default=5, ge=1)
    # The coordinator-staffing ratio applies to the urban area: the codes (and their subtrees)
    # it covers, comma-separated; empty: everywhere.
    staffing_areas: str = Field(default="", pattern=r"^(\d{6,15}(,\d{6,15})*)?$")

    token_idle_minutes: int = Field(default=15, ge=1)
    token_lifetime_hours: int = Field(default=8, ge=1)
    # Failed sign-ins are counted per username, whether or not it names an account (so the
    # lockout does not tell which do): ``max_failed_logins`` lock that name for
    # ``lockout_minutes``; a count is forgotten ``lockout_minutes`` after its last failure.
    max_failed_logins: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    # And per client address: after this many failures within ``sign_in_address_minutes`` of
    # the first, sign-ins from that address are refused (429, Retry-After) until the window
    # ends; 0 turns it off. Behind a reverse proxy the address is the proxy's — everyone's
    # failures counted together — unless REGISTRY_FORWARDED_ALLOW_IPS trusts its X-Forwarded-For.
    sign_in_address_failures: int = Field(default=30, ge=0)
    sign_in_address_minutes: int = Field(default=15, ge=1)
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

    # The pages' cookies' Secure flag. "auto" does not trust the request's scheme alone: in
    # production they are Secure even when a proxy's X-Forwarded-Proto was not passed on.
    cookie_secure: CookieSecure = CookieSecure.auto

    max_request_bytes: int = Field(default=1 << 20, ge=1024)
    max_upload_bytes: int = Field(default=256 << 20, ge=1024)  # ledger files (POST /imports)
    purpose_max_length: int = 200
    # Break-glass: how long a grant lasts, and how long its stated reason must be at least.
    break_glass_minutes: int = Field(default=60, ge=1, le=24 * 60)
    break_glass_reason_min_length: int = Field(default=20, ge=1, le=500)

    # Retention (`registry retention plan|apply`): years after a record's end until it is
    # erased (crypto-shredded); corrections cases are archived read-only, never erased.
    retention_residency_years: int = Field(default=3, ge=1, le=50)  # after the resident left
    retention_release_years: int = Field(default=1, ge=0, le=50)  # after the aftercare period
    retention_rental_years: int = Field(default=3, ge=1, le=50)  # after deregistration
    retention_corrections_archive_years: int = Field(default=0, ge=0, le=50)  # after it ended
    retention_audit_months: int = Field(default=36, ge=6)  # audit events online, at least 6
    # Where `registry audit archive` (and `retention apply`) writes the audit events past their
    # online period (default data_dir/audit-archive); the files are then kept offline.
    audit_archive_dir: Path | None = None
    retention_batch: int = Field(default=500, ge=1, le=100_000)  # erasures per transaction

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
        if self.audit_work_end_hour <= self.audit_work_start_hour:
            raise ValueError("REGISTRY_AUDIT_WORK_END_HOUR must be after "
                             "REGISTRY_AUDIT_WORK_START_HOUR")
        if self.key_provider is KeyProviderName.pkcs11:
            if self.pkcs11_module is None or self.pkcs11_token_label is None:
                raise ValueError("REGISTRY_KEY_PROVIDER=pkcs11 needs REGISTRY_PKCS11_MODULE and "
                                 "REGISTRY_PKCS11_TOKEN_LABEL")
            if (self.pkcs11_pin is None) == (self.pkcs11_pin_file is None):
                raise ValueError("REGISTRY_KEY_PROVIDER=pkcs11 needs exactly one of "
                                 "REGISTRY_PKCS11_PIN and REGISTRY_PKCS11_PIN_FILE")
        elif self.environment == Environment.production and self.key_file is None:
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
    def resolved_audit_archive_dir(self) -> Path:
        return self.audit_archive_dir or self.data_dir / "audit-archive"

    @property
    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "registry.key"


@lru_cache
def get_settings() -> Settings:
    return Settings()
