"""Keys in a hardware security module (PKCS#11), tested against a real SoftHSM2 token.

The set-up initialises this run's own tokens in a temporary directory (its own SOFTHSM2_CONF)
with ``softhsm2-util --init-token --free``; without SoftHSM2 (``make test`` installs the Debian
package ``softhsm2`` when it runs as root) every test here skips, saying why. Tests keep apart
inside the token by a key-label prefix of their own. One token is logged into by no test with
the right PIN, so the token itself judges the wrong PIN there (PKCS#11 login is per process).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass
from pkcs11.exceptions import AttributeSensitive, KeyUnextractable
from sqlalchemy import select
from typer.testing import CliRunner

from registry.cli import app as cli_app
from registry.clock import Clock
from registry.config import KeyProviderName, get_settings
from registry.errors import SetupError
from registry.models import DataKey
from registry.rentals import service as rentals
from registry.rentals.schemas import PledgeIn, RentalCreate, RentalSearch
from registry.schemas import PersonIn
from registry.security.crypto import CryptoError
from registry.security.keys import Keyring
from registry.security.pkcs11 import Pkcs11Provider
from registry.security.providers import provider_from_settings
from registry.vault.accounts import system_actor
from registry.vault.base import Actor
from registry.vault.runtime import Registry
from tests.conftest import (
    COMMUNITY_A,
    FIXED_NOW,
    GRID_A1,
    TREE,
    id_number,
    postgres_database,
)
from tests.conftest import test_settings as make_settings

MODULES = (Path("/usr/lib/softhsm/libsofthsm2.so"),
           Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"))
TOKEN = "registry-test"
UNTOUCHED = "registry-pin"  # never logged into with the right PIN
PIN = "hsm-pin-4711"
SO_PIN = "hsm-so-pin-0815"
DEK = bytes(range(32))


@dataclass(frozen=True)
class SoftHsm:
    module: Path
    conf: Path


@pytest.fixture(scope="module")
def softhsm(tmp_path_factory) -> Iterator[SoftHsm]:
    """This run's SoftHSM2: its own configuration and token directory, two fresh tokens."""
    util = shutil.which("softhsm2-util")
    module = next((path for path in MODULES if path.is_file()), None)
    if util is None or module is None:
        pytest.skip("SoftHSM2 is not installed (Debian package softhsm2; `make test` installs "
                    "it when run as root with apt-get)")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in (TOKEN, UNTOUCHED):
        subprocess.run([util, "--init-token", "--free", "--label", label, "--pin", PIN,
                        "--so-pin", SO_PIN], env=env, check=True, capture_output=True)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SOFTHSM2_CONF", str(conf))
        yield SoftHsm(module, conf)


def prefix() -> str:
    return f"t{secrets.token_hex(4)}-"


def open_provider(hsm: SoftHsm, label_prefix: str, *, create: bool = False,
                  token: str = TOKEN, pin: str = PIN) -> Pkcs11Provider:
    return Pkcs11Provider.open(module=hsm.module, token_label=token, pin=pin,
                               prefix=label_prefix, create=create)


@pytest.fixture
def provider(softhsm) -> Pkcs11Provider:
    return open_provider(softhsm, prefix(), create=True)


def token_session(hsm: SoftHsm) -> pkcs11.Session:
    """A session of the test's own; the process is logged in, so it sees private objects."""
    return pkcs11.lib(str(hsm.module)).get_token(token_label=TOKEN).open(rw=True)


def find_key(session: pkcs11.Session, label: str) -> pkcs11.SecretKey:
    return session.get_key(ObjectClass.SECRET_KEY, label=label)


# --- the provider ---------------------------------------------------------------------------


def test_round_trip_inside_the_token(provider):
    kek_id, wrapped = provider.wrap(DEK, aad=b"data key 1")
    assert kek_id == provider.active_kek_id
    assert len(wrapped) == 12 + 32 + 16 and DEK not in wrapped
    assert provider.unwrap(kek_id, wrapped, aad=b"data key 1") == DEK
    assert provider.wrap(DEK, aad=b"data key 1")[1] != wrapped  # a fresh nonce each time


def test_wrong_aad_kek_or_bytes_fail(provider):
    kek_id, wrapped = provider.wrap(DEK, aad=b"data key 1")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, wrapped, aad=b"data key 2")
    with pytest.raises(CryptoError, match="not in the token"):
        provider.unwrap("kek-20260101000000000000-abcd", wrapped, aad=b"data key 1")
    tampered = wrapped[:-1] + bytes([wrapped[-1] ^ 1])
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, tampered, aad=b"data key 1")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, wrapped[:20], aad=b"data key 1")
    # Another KEK version of the same token: the KEK id is bound too.
    newer = provider.new_kek()
    with pytest.raises(CryptoError):
        provider.unwrap(newer, wrapped, aad=b"data key 1")


def test_keys_are_sensitive_and_never_leave_the_token(softhsm):
    label_prefix = prefix()
    provider = open_provider(softhsm, label_prefix, create=True)
    session = token_session(softhsm)
    try:
        kek = find_key(session, label_prefix + provider.active_kek_id)
        index = find_key(session, label_prefix + "index")
        for key in (kek, index):
            assert key[Attribute.TOKEN] and key[Attribute.PRIVATE]
            assert key[Attribute.SENSITIVE] and key[Attribute.ALWAYS_SENSITIVE]
            assert not key[Attribute.EXTRACTABLE] and key[Attribute.NEVER_EXTRACTABLE]
            assert not key[Attribute.MODIFIABLE]
            assert key[Attribute.VALUE_LEN] == 32
            with pytest.raises(AttributeSensitive):
                key[Attribute.VALUE]
        assert kek.key_type == KeyType.AES
        assert kek[Attribute.ENCRYPT] and kek[Attribute.DECRYPT]
        assert not (kek[Attribute.WRAP] or kek[Attribute.UNWRAP] or kek[Attribute.SIGN])
        assert index.key_type == KeyType.GENERIC_SECRET
        assert index[Attribute.SIGN] and not index[Attribute.ENCRYPT]
        # Nor can another key export it wrapped.
        wrapper = session.generate_key(KeyType.AES, 256, capabilities=MechanismFlag.WRAP)
        with pytest.raises(KeyUnextractable):
            wrapper.wrap_key(kek)
    finally:
        session.close()


def test_an_extractable_key_is_refused(softhsm):
    label_prefix = prefix()
    open_provider(softhsm, label_prefix, create=True)
    session = token_session(softhsm)
    try:
        session.generate_key(KeyType.AES, 256, label=f"{label_prefix}kek-29990101000000000000-0000",
                             store=True, template={Attribute.EXTRACTABLE: True,
                                                   Attribute.SENSITIVE: False})
    finally:
        session.close()
    with pytest.raises(SetupError, match="extractable") as caught:
        open_provider(softhsm, label_prefix)
    assert "可导出" in caught.value.message_zh


def test_new_kek_rotates_and_retire_kek_destroys(softhsm):
    label_prefix = prefix()
    provider = open_provider(softhsm, label_prefix, create=True)
    first = provider.active_kek_id
    old_id, old_wrapped = provider.wrap(DEK, aad=b"k")
    second = provider.new_kek()
    third = provider.new_kek()
    assert provider.kek_ids() == [first, second, third]  # sorted by creation
    assert provider.active_kek_id == third
    assert all(len(kek_id) <= 32 and kek_id.startswith("kek-") for kek_id in provider.kek_ids())
    assert provider.wrap(DEK, aad=b"k")[0] == third
    assert provider.unwrap(old_id, old_wrapped, aad=b"k") == DEK  # old versions still open

    # Another provider (a restart) finds the same versions and the same active one.
    again = open_provider(softhsm, label_prefix)
    assert again.kek_ids() == [first, second, third] and again.active_kek_id == third

    with pytest.raises(SetupError, match="active") as caught:
        provider.retire_kek(third)
    assert "当前主密钥" in caught.value.message_zh
    provider.retire_kek(first)
    provider.retire_kek(first)  # already gone: nothing to do
    assert provider.kek_ids() == [second, third]
    with pytest.raises(CryptoError):
        provider.unwrap(old_id, old_wrapped, aad=b"k")
    session = token_session(softhsm)
    try:
        assert not list(session.get_objects({Attribute.LABEL: label_prefix + first}))
    finally:
        session.close()
    # The other instance learns of a version made elsewhere when it meets one.
    _, newer_wrapped = provider.wrap(DEK, aad=b"k")
    assert again.unwrap(third, newer_wrapped, aad=b"k") == DEK
    fourth = provider.new_kek()
    _, fourth_wrapped = provider.wrap(DEK, aad=b"k")
    assert again.unwrap(fourth, fourth_wrapped, aad=b"k") == DEK
    assert again.active_kek_id == fourth


def test_index_root_comes_from_the_token_deterministically(softhsm):
    label_prefix = prefix()
    one = open_provider(softhsm, label_prefix, create=True)
    two = open_provider(softhsm, label_prefix)
    other = open_provider(softhsm, prefix(), create=True)
    assert len(one.index_root()) == 32
    assert one.index_root() == two.index_root() != other.index_root()
    assert one.checkpoint_key().private_bytes_raw() == two.checkpoint_key().private_bytes_raw()
    one.new_kek()  # rotation leaves the index root alone
    assert open_provider(softhsm, label_prefix).index_root() == one.index_root()
    assert PIN not in repr(one) and one.index_root().hex() not in repr(one)


def test_index_root_versions_new_and_retire(softhsm):
    label_prefix = prefix()
    provider = open_provider(softhsm, label_prefix, create=True)
    first = provider.index_root()
    seed = provider.checkpoint_key().private_bytes_raw()
    assert provider.index_versions() == [1] and provider.index_root(1) == first

    assert provider.new_index_root() == 2
    assert provider.new_index_root() == 3
    assert provider.index_versions() == [1, 2, 3]
    roots = [provider.index_root(v) for v in (1, 2, 3)]
    assert len(set(roots)) == 3 and provider.index_root() == roots[2]  # the newest is active
    assert provider.checkpoint_key().private_bytes_raw() == seed  # the checkpoint key stays

    # Each version is a protected HMAC secret of its own in the token.
    session = token_session(softhsm)
    try:
        for name in ("index-2", "index-3"):
            secret = find_key(session, label_prefix + name)
            assert secret.key_type == KeyType.GENERIC_SECRET and secret[Attribute.SIGN]
            assert secret[Attribute.SENSITIVE] and not secret[Attribute.EXTRACTABLE]
            with pytest.raises(AttributeSensitive):
                secret[Attribute.VALUE]
    finally:
        session.close()

    # A restart (another provider) finds the versions and derives the same roots.
    again = open_provider(softhsm, label_prefix)
    assert again.index_versions() == [1, 2, 3]
    assert [again.index_root(v) for v in (1, 2, 3)] == roots

    with pytest.raises(SetupError, match="active one") as caught:
        provider.retire_index_root(3)
    assert "当前版本" in caught.value.message_zh
    provider.retire_index_root(2)
    provider.retire_index_root(2)  # already gone: nothing to do
    assert provider.index_versions() == [1, 3]
    with pytest.raises(CryptoError, match="not in the token"):
        open_provider(softhsm, label_prefix).index_root(2)
    session = token_session(softhsm)
    try:
        assert not list(session.get_objects({Attribute.LABEL: label_prefix + "index-2"}))
    finally:
        session.close()
    # Version 1's secret is the checkpoint key's seed: retired from index use, kept in the
    # token, so the key that signed the checkpoints is the same after a restart.
    provider.retire_index_root(1)
    restarted = open_provider(softhsm, label_prefix)
    assert restarted.checkpoint_key().private_bytes_raw() == seed
    assert restarted.index_root() == roots[2]
    # Another instance learns of a version made elsewhere when it meets one.
    fourth = provider.new_index_root()
    assert restarted.index_root(fourth) == provider.index_root(fourth)


# --- clear errors ---------------------------------------------------------------------------


def assert_clear(error: SetupError, english: str, chinese: str) -> None:
    assert english in error.message, error.message
    assert chinese in error.message_zh, error.message_zh
    assert PIN not in str(error) and "wrong-pin" not in str(error)


def test_missing_or_broken_module(softhsm, tmp_path):
    with pytest.raises(SetupError) as caught:
        Pkcs11Provider.open(module=tmp_path / "libnothing.so", token_label=TOKEN, pin=PIN,
                            prefix=prefix())
    assert_clear(caught.value, "PKCS#11 module", "未找到 PKCS#11 模块")
    not_a_module = tmp_path / "libfake.so"
    not_a_module.write_text("not a shared object")
    with pytest.raises(SetupError) as caught:
        Pkcs11Provider.open(module=not_a_module, token_label=TOKEN, pin=PIN, prefix=prefix())
    assert_clear(caught.value, "not a loadable PKCS#11 module", "不是可加载的 PKCS#11 模块")


def test_missing_token(softhsm):
    with pytest.raises(SetupError) as caught:
        open_provider(softhsm, prefix(), token="no-such-token")
    assert_clear(caught.value, "no token labelled 'no-such-token'", "没有标签为")


def test_wrong_pin(softhsm):
    # Judged by the token: nothing in this process has logged into it.
    with pytest.raises(SetupError) as caught:
        open_provider(softhsm, prefix(), token=UNTOUCHED, pin="wrong-pin")
    assert_clear(caught.value, "wrong PIN", "PIN 错误")
    # Judged against the PIN the token accepted for this process's login.
    open_provider(softhsm, prefix(), create=True)
    with pytest.raises(SetupError) as caught:
        open_provider(softhsm, prefix(), pin="wrong-pin")
    assert_clear(caught.value, "wrong PIN", "PIN 错误")


def test_keys_missing_from_the_token(softhsm):
    label_prefix = prefix()
    with pytest.raises(SetupError) as caught:
        open_provider(softhsm, label_prefix)
    assert_clear(caught.value, f"holds no index secret labelled '{label_prefix}index'",
                 "registry init")
    session = token_session(softhsm)
    try:  # an index secret alone: the KEK is what is missing now
        session.generate_key(KeyType.GENERIC_SECRET, 256, label=label_prefix + "index",
                             store=True, capabilities=MechanismFlag.SIGN,
                             template={Attribute.EXTRACTABLE: False})
    finally:
        session.close()
    with pytest.raises(SetupError) as caught:
        open_provider(softhsm, label_prefix)
    assert_clear(caught.value, "holds no key-encryption key", "没有标签为")
    created = open_provider(softhsm, label_prefix, create=True).created
    assert created == ["a key-encryption key"]


# --- settings -------------------------------------------------------------------------------


def hsm_settings(hsm: SoftHsm, tmp_path: Path, label_prefix: str, **overrides):
    values = dict(key_provider="pkcs11", pkcs11_module=hsm.module, pkcs11_token_label=TOKEN,
                  pkcs11_pin=PIN, pkcs11_key_label_prefix=label_prefix)
    values.update(overrides)
    return make_settings(tmp_path, **values)


def test_settings_choose_the_provider(softhsm, tmp_path):
    label_prefix = prefix()
    open_provider(softhsm, label_prefix, create=True)
    settings = hsm_settings(softhsm, tmp_path, label_prefix)
    assert settings.key_provider is KeyProviderName.pkcs11
    assert PIN not in repr(settings)
    provider = provider_from_settings(settings)
    assert isinstance(provider, Pkcs11Provider)
    assert isinstance(Keyring.from_settings(settings).provider, Pkcs11Provider)
    assert not (tmp_path / "registry.key").exists()


def test_pin_from_a_file(softhsm, tmp_path):
    label_prefix = prefix()
    open_provider(softhsm, label_prefix, create=True)
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    settings = hsm_settings(softhsm, tmp_path, label_prefix, pkcs11_pin=None,
                            pkcs11_pin_file=pin_file)
    assert isinstance(provider_from_settings(settings), Pkcs11Provider)
    pin_file.chmod(0o640)
    with pytest.raises(SetupError) as caught:
        provider_from_settings(settings)
    assert_clear(caught.value, "readable by others", "chmod 600")
    pin_file.unlink()
    with pytest.raises(SetupError) as caught:
        provider_from_settings(settings)
    assert_clear(caught.value, "missing or unreadable", "无法读取")


@pytest.mark.parametrize("overrides", [
    {"pkcs11_module": None},
    {"pkcs11_token_label": None},
    {"pkcs11_pin": None},
    {"pkcs11_pin_file": Path("/run/secrets/pin")},
])
def test_incomplete_settings_are_refused_without_the_pin(softhsm, tmp_path, overrides):
    with pytest.raises(ValueError, match="REGISTRY_") as caught:
        hsm_settings(softhsm, tmp_path, prefix(), **overrides)
    assert PIN not in str(caught.value)


# --- a whole registry on the HSM, on both databases -----------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path) -> Iterator[str]:
    """An empty database of the test's own (``registry init`` creates the tables)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'registry.sqlite3'}"
        return
    with postgres_database("registry_hsm") as url:
        yield url


def registry_env(hsm: SoftHsm, data: Path, url: str, label_prefix: str,
                 pin_file: Path) -> dict[str, str]:
    return {"REGISTRY_DATA_DIR": str(data), "REGISTRY_DATABASE_URL": url,
            "REGISTRY_ENVIRONMENT": "test", "REGISTRY_TIMEZONE": "UTC",
            "REGISTRY_ARGON2_TIME_COST": "1", "REGISTRY_ARGON2_MEMORY_KIB": "64",
            "REGISTRY_KEY_PROVIDER": "pkcs11", "REGISTRY_PKCS11_MODULE": str(hsm.module),
            "REGISTRY_PKCS11_TOKEN_LABEL": TOKEN, "REGISTRY_PKCS11_PIN_FILE": str(pin_file),
            "REGISTRY_PKCS11_KEY_LABEL_PREFIX": label_prefix, "SOFTHSM2_CONF": str(hsm.conf)}


def run_cli(monkeypatch, env: dict[str, str], *args: str):
    for name in list(os.environ):
        if name.startswith("REGISTRY_") and name != "REGISTRY_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(cli_app, list(args))
    finally:
        get_settings.cache_clear()


# Run in a second process: a restart finds the keys in the token and reads the data.
READER = """
import sys
from registry.clock import Clock
from registry.config import Settings
from registry.rentals import service as rentals
from registry.rentals.schemas import RentalSearch
from registry.vault.base import Actor
from registry.vault.runtime import Registry
import uuid

registry = Registry(Settings(_env_file=None))
actor = Actor(id=uuid.UUID(sys.argv[1]), username="police-hsm", role="police", scope=sys.argv[2])
with registry.vault(actor) as vault:
    found = rentals.search(vault, RentalSearch(landlord_id_number=sys.argv[3]), purpose="case 7")
    print(type(registry.keyring.provider).__name__, found[0].address, found[0].landlord.name)
"""


def test_a_registry_on_the_hsm_creates_reads_and_restarts(softhsm, database, tmp_path,
                                                           monkeypatch):
    label_prefix = prefix()
    data = tmp_path / "data"
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    env = registry_env(softhsm, data, database, label_prefix, pin_file)

    init = run_cli(monkeypatch, env, "init")
    assert init.exit_code == 0, init.output
    assert "created the index secret and a key-encryption key in token" in init.output
    assert PIN not in init.output
    assert not (data / "registry.key").exists()
    again = run_cli(monkeypatch, env, "init")
    assert again.exit_code == 0, again.output
    assert "holds the keys; keeping them" in again.output

    settings = make_settings(data, database_url=database, key_provider="pkcs11",
                             pkcs11_module=softhsm.module, pkcs11_token_label=TOKEN,
                             pkcs11_pin_file=pin_file, pkcs11_key_label_prefix=label_prefix)
    registry = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    try:
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            user = vault.users.add(username="police-hsm", password="correct-horse-battery",
                                   role="police", jurisdiction_code=COMMUNITY_A)
            vault.commit()
        actor = Actor(id=user.id, username=user.username, role="police", scope=COMMUNITY_A)
        with registry.vault(actor) as vault:
            created = rentals.register(vault, RentalCreate(
                jurisdiction_code=GRID_A1, address="东门路8号1幢101室", units=1,
                registered_on="2026-03-01",
                landlord=PersonIn(name="夏侯明远", id_number=id_number(8), phone="13900000008"),
                pledge=PledgeIn(signed_on="2026-03-02", valid_until="2027-03-01")),
                purpose="case 7")
            vault.commit()
        with registry.db.session() as session:
            kek_ids = set(session.scalars(select(DataKey.kek_id)))
        assert kek_ids == {registry.keyring.provider.active_kek_id}
    finally:
        registry.db.dispose()

    # A new Registry in this process, after a rotation: old data keys open, new ones wrap
    # under the new version.
    rotated = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    try:
        newer = rotated.keyring.provider.new_kek()
        with rotated.vault(actor) as vault:
            read = rentals.get(vault, created.id, purpose="case 7")
            assert (read.address, read.landlord.name) == ("东门路8号1幢101室", "夏侯明远")
            rentals.register(vault, RentalCreate(
                jurisdiction_code=GRID_A1, address="东门路9号", units=1,
                registered_on="2026-03-01",
                landlord=PersonIn(name="欧阳春", id_number=id_number(9), phone="13900000009")),
                purpose="case 7")
            vault.commit()
        with rotated.db.session() as session:
            assert newer in set(session.scalars(select(DataKey.kek_id)))
        with rotated.vault(actor) as vault:
            assert rentals.search(vault, RentalSearch(landlord_id_number=id_number(9)),
                                  purpose="case 7")[0].address == "东门路9号"
    finally:
        rotated.db.dispose()

    # A second process finds the same keys in the token and opens the data.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    result = subprocess.run(
        [sys.executable, "-c", READER, str(user.id), COMMUNITY_A, id_number(8)],
        env={**clean, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Pkcs11Provider", "东门路8号1幢101室", "夏侯明远"]


def test_init_refuses_to_make_new_keys_for_a_database_with_data(softhsm, database, tmp_path,
                                                               monkeypatch):
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN)
    pin_file.chmod(0o400)
    env = registry_env(softhsm, tmp_path / "data", database, prefix(), pin_file)
    assert run_cli(monkeypatch, env, "init").exit_code == 0
    # Pointed at a label prefix with no keys (as good as the wrong token): refused, not made.
    other = {**env, "REGISTRY_PKCS11_KEY_LABEL_PREFIX": prefix()}
    result = run_cli(monkeypatch, other, "init")
    assert result.exit_code == 2, result.output
    assert "holds no index secret" in result.stderr and PIN not in result.output
    with pytest.raises(SetupError, match="holds no index secret"):
        open_provider(softhsm, other["REGISTRY_PKCS11_KEY_LABEL_PREFIX"])
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("served"))
    wrong = run_cli(monkeypatch, {**env, "REGISTRY_PKCS11_PIN_FILE": str(tmp_path / "none")},
                    "serve")
    assert wrong.exit_code == 2 and "missing or unreadable" in wrong.stderr
    assert stat.S_IMODE(pin_file.stat().st_mode) == 0o400


def test_index_rotation_on_the_hsm(softhsm, database, tmp_path, monkeypatch):
    """A new index secret in the token, every index rebuilt under it, version 1 retired from
    the database (its object kept: the checkpoint seed); a restart finds everything."""
    label_prefix = prefix()
    data = tmp_path / "data"
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    env = registry_env(softhsm, data, database, label_prefix, pin_file)
    assert run_cli(monkeypatch, env, "init").exit_code == 0
    settings = make_settings(data, database_url=database, key_provider="pkcs11",
                             pkcs11_module=softhsm.module, pkcs11_token_label=TOKEN,
                             pkcs11_pin_file=pin_file, pkcs11_key_label_prefix=label_prefix)
    number = id_number(21)
    search = RentalSearch(landlord_id_number=number)
    registry = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    try:
        signer = registry.checkpoints.public_key
        with registry.vault(system_actor("tests")) as vault:
            vault.jurisdictions.upsert(TREE)
            user = vault.users.add(username="police-idx", password="correct-horse-battery",
                                   role="police", jurisdiction_code=COMMUNITY_A)
            vault.commit()
        actor = Actor(id=user.id, username=user.username, role="police", scope=COMMUNITY_A)
        with registry.vault(actor) as vault:
            rentals.register(vault, RentalCreate(
                jurisdiction_code=GRID_A1, address="东门路21号", units=1,
                registered_on="2026-03-01",
                landlord=PersonIn(name="司马青云", id_number=number, phone="13900000021")),
                purpose="case 8")
            vault.commit()
        with registry.vault(system_actor("tests")) as vault:
            version, pending, resumed = vault.indexes.begin_rotation()
            vault.commit()
        assert (version, pending, resumed) == (2, 2, False)
        with registry.vault(system_actor("tests")) as vault:
            tables = vault.indexes.tables()
        for table in tables:
            with registry.vault(system_actor("tests")) as vault:
                assert vault.indexes.rebuild(table, 100)[1]
                vault.commit()
        with registry.vault(system_actor("tests")) as vault:
            retired = vault.indexes.retire()
            vault.commit()
            vault.indexes.destroy(retired)
        assert retired == [1]
        with registry.vault(actor) as vault:
            assert rentals.search(vault, search, purpose="case 8")[0].address == "东门路21号"
    finally:
        registry.db.dispose()
    session = token_session(softhsm)
    try:
        assert list(session.get_objects({Attribute.LABEL: label_prefix + "index-2"}))
        assert list(session.get_objects({Attribute.LABEL: label_prefix + "index"}))
    finally:
        session.close()

    restarted = Registry(settings, clock=Clock(fixed=FIXED_NOW))
    try:
        assert restarted.checkpoints.public_key == signer
        with restarted.vault(actor) as vault:
            assert rentals.search(vault, search, purpose="case 8")[0].address == "东门路21号"
        with restarted.vault(system_actor("tests")) as vault:
            report = vault.keys.status().index
        assert [(v.version, v.in_use, v.active) for v in report.versions] == [
            (1, False, False), (2, True, True)]
    finally:
        restarted.db.dispose()
