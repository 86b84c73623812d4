"""registry/security/crypto.py and sealed.py: the AEAD envelope, the key file, key wrapping, the
blind indexer, and the column type that refuses plaintext. Pure unit tests, no database."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from registry.config import CipherName, Settings
from registry.errors import SetupError
from registry.security.crypto import (
    FORMAT_VERSION,
    HEADER_BYTES,
    KEYFILE_FORMAT,
    NONCE_BYTES,
    TAG_BYTES,
    Algorithm,
    BlindIndexer,
    Ciphertext,
    CryptoError,
    LocalKeyFile,
    context,
    key_id_of,
    open_sealed,
    seal,
)
from registry.security.keys import Keyring
from registry.security.sealed import PlaintextRefused, Sealed

AEADS = [Algorithm.aes_256_gcm, Algorithm.sm4_gcm]
ROW = uuid.UUID("01890000-0000-7000-8000-000000000001")
OTHER_ROW = uuid.UUID("01890000-0000-7000-8000-000000000002")
CTX = context("person", "name", ROW)
SECRET = "王小明 11010519491231002X".encode()


@pytest.fixture
def key() -> bytes:
    return os.urandom(32)


@pytest.fixture
def key_id() -> uuid.UUID:
    return uuid.uuid4()


def flip(data: bytes, index: int) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def write_key_file(path: Path, body: object, mode: int = 0o600) -> Path:
    path.write_text(json.dumps(body))
    path.chmod(mode)
    return path


def key_file_body(**overrides) -> dict:
    body = {
        "format": KEYFILE_FORMAT,
        "active": "kek-1",
        "keks": {"kek-1": base64.b64encode(os.urandom(32)).decode()},
        "index_root": base64.b64encode(os.urandom(32)).decode(),
    }
    body.update(overrides)
    return body


def setup_error(path: Path) -> SetupError:
    with pytest.raises(SetupError) as caught:
        LocalKeyFile.load(path)
    return caught.value


# --- seal and open -------------------------------------------------------------------------


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_round_trip(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    assert isinstance(sealed, Ciphertext)
    assert SECRET not in sealed
    assert open_sealed(sealed, key, context=CTX) == SECRET


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
@pytest.mark.parametrize("plaintext", [b"", b"x", os.urandom(1000)], ids=["empty", "one", "1k"])
def test_round_trip_of_any_length(alg, key, key_id, plaintext):
    sealed = seal(alg, key_id, key, plaintext, context=CTX)
    assert len(sealed) == HEADER_BYTES + len(plaintext) + TAG_BYTES
    assert open_sealed(sealed, key, context=CTX) == plaintext


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_header_layout(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    assert HEADER_BYTES == 1 + 1 + 16 + NONCE_BYTES == 30
    assert sealed[0] == FORMAT_VERSION == 1
    assert sealed[1] == alg.value
    assert sealed[2:18] == key_id.bytes
    assert key_id_of(sealed) == key_id
    assert len(sealed[18:30]) == NONCE_BYTES


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_every_seal_uses_a_fresh_nonce(alg, key, key_id):
    one = seal(alg, key_id, key, SECRET, context=CTX)
    two = seal(alg, key_id, key, SECRET, context=CTX)
    assert one[18:30] != two[18:30]
    assert one[HEADER_BYTES:] != two[HEADER_BYTES:]


def test_algorithm_values_are_stable():
    # These bytes are written into every stored ciphertext: they may never change.
    assert (Algorithm.plaintext, Algorithm.aes_256_gcm, Algorithm.sm4_gcm) == (0, 1, 2)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
@pytest.mark.parametrize("index", [0, *range(2, 18)], ids=lambda i: f"header{i}")
def test_tampering_with_the_header_fails(alg, key, key_id, index):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(flip(sealed, index), key, context=CTX)


@pytest.mark.parametrize("alg, replacement", [
    (Algorithm.aes_256_gcm, Algorithm.sm4_gcm), (Algorithm.sm4_gcm, Algorithm.aes_256_gcm),
    (Algorithm.aes_256_gcm, 3), (Algorithm.sm4_gcm, 0xFF),
], ids=["aes-to-sm4", "sm4-to-aes", "aes-to-3", "sm4-to-255"])
def test_changing_the_algorithm_byte_to_another_aead_or_unknown_fails(alg, key, key_id,
                                                                      replacement):
    sealed = bytearray(seal(alg, key_id, key, SECRET, context=CTX))
    sealed[1] = int(replacement)
    with pytest.raises(CryptoError):
        open_sealed(bytes(sealed), key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_downgrading_the_algorithm_byte_to_plaintext_fails(alg, key, key_id):
    sealed = bytearray(seal(alg, key_id, key, SECRET, context=CTX))
    sealed[1] = Algorithm.plaintext
    with pytest.raises(CryptoError):
        open_sealed(bytes(sealed), key, context=CTX)


def test_a_forged_plaintext_ciphertext_does_not_open_under_a_real_key(key, key_id):
    forged = bytes((FORMAT_VERSION, Algorithm.plaintext)) + key_id.bytes + os.urandom(12)
    with pytest.raises(CryptoError):
        open_sealed(forged + "李四".encode(), key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
@pytest.mark.parametrize("index", range(18, 30), ids=lambda i: f"nonce{i - 18}")
def test_tampering_with_the_nonce_fails(alg, key, key_id, index):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(flip(sealed, index), key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_tampering_with_any_body_byte_fails(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    for index in range(HEADER_BYTES, len(sealed) - TAG_BYTES):
        with pytest.raises(CryptoError):
            open_sealed(flip(sealed, index), key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_tampering_with_any_tag_byte_fails(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    for index in range(len(sealed) - TAG_BYTES, len(sealed)):
        with pytest.raises(CryptoError):
            open_sealed(flip(sealed, index), key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
@pytest.mark.parametrize("keep", [0, 1, HEADER_BYTES - 1, HEADER_BYTES, HEADER_BYTES + 5,
                                  -1], ids=lambda k: f"keep{k}")
def test_truncation_fails(alg, key, key_id, keep):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(sealed[:keep], key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_appending_bytes_fails(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(sealed + b"\x00", key, context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
def test_wrong_key_fails(alg, key, key_id):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError) as caught:
        open_sealed(sealed, os.urandom(32), context=CTX)
    assert "王" not in str(caught.value)


def test_sm4_wrong_key_in_the_bytes_it_uses_fails(key, key_id):
    sealed = seal(Algorithm.sm4_gcm, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(sealed, flip(key, 0), context=CTX)


@pytest.mark.parametrize("alg", AEADS, ids=lambda a: a.name)
@pytest.mark.parametrize("other", [
    context("rental_property", "name", ROW),  # another table
    context("person", "phone", ROW),  # another column
    context("person", "name", OTHER_ROW),  # another row
    b"",
], ids=["table", "column", "row", "empty"])
def test_other_associated_data_fails(alg, key, key_id, other):
    sealed = seal(alg, key_id, key, SECRET, context=CTX)
    with pytest.raises(CryptoError):
        open_sealed(sealed, key, context=other)


def test_context_binds_table_column_and_row():
    assert context("person", "name", ROW) == b"person\x00name\x00" + ROW.bytes
    assert len({context("a", "bc", ROW), context("ab", "c", ROW)}) == 2


def test_unknown_format_version_fails(key, key_id):
    sealed = bytearray(seal(Algorithm.aes_256_gcm, key_id, key, SECRET, context=CTX))
    sealed[0] = 2
    with pytest.raises(CryptoError, match="unknown ciphertext format"):
        open_sealed(bytes(sealed), key, context=CTX)


def test_open_accepts_plain_bytes_read_back_from_storage(key, key_id):
    sealed = seal(Algorithm.aes_256_gcm, key_id, key, SECRET, context=CTX)
    assert open_sealed(bytes(sealed), key, context=CTX) == SECRET
    assert open_sealed(memoryview(bytes(sealed)), key, context=CTX) == SECRET


# --- Ciphertext and the sealed column ------------------------------------------------------


def test_ciphertext_repr_and_str_hide_the_content(key, key_id):
    sealed = seal(Algorithm.plaintext, key_id, key, b"secret-name", context=CTX)
    assert repr(sealed) == f"<Ciphertext {len(sealed)} bytes>"
    assert str(sealed) == repr(sealed)
    old_style = "%s" % (sealed,)  # noqa: UP031 - the %-operator path too
    for shown in (repr(sealed), str(sealed), f"{sealed}", f"{sealed!r}", old_style,
                  repr([sealed]), repr({"name": sealed})):
        assert "secret" not in shown
        assert "\\x" not in shown


def test_ciphertext_is_still_bytes(key, key_id):
    sealed = seal(Algorithm.aes_256_gcm, key_id, key, SECRET, context=CTX)
    assert isinstance(sealed, bytes)
    assert bytes(sealed) == sealed


def test_sealed_column_binds_ciphertext_as_plain_bytes(key, key_id):
    sealed = seal(Algorithm.aes_256_gcm, key_id, key, SECRET, context=CTX)
    bound = Sealed().process_bind_param(sealed, dialect=None)
    assert type(bound) is bytes
    assert bound == sealed


def test_sealed_column_passes_none():
    assert Sealed().process_bind_param(None, dialect=None) is None
    assert Sealed().process_result_value(None, dialect=None) is None


@pytest.mark.parametrize("value", ["王小明", "", b"\x01\x00raw", bytearray(b"raw"),
                                   memoryview(b"raw"), 42],
                         ids=["text", "empty text", "bytes", "bytearray", "memoryview", "int"])
def test_sealed_column_refuses_anything_but_ciphertext(value):
    with pytest.raises(PlaintextRefused) as caught:
        Sealed().process_bind_param(value, dialect=None)
    assert isinstance(caught.value, TypeError)
    assert "王" not in str(caught.value)


def test_sealed_column_reads_back_ciphertext(key, key_id):
    sealed = seal(Algorithm.aes_256_gcm, key_id, key, SECRET, context=CTX)
    read = Sealed().process_result_value(bytes(sealed), dialect=None)
    assert isinstance(read, Ciphertext)
    assert open_sealed(read, key, context=CTX) == SECRET


# --- the key file --------------------------------------------------------------------------


def test_create_writes_mode_0600_and_loads(tmp_path):
    path = tmp_path / "keys" / "registry.key"
    created = LocalKeyFile.create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    body = json.loads(path.read_text())
    assert body["format"] == KEYFILE_FORMAT
    assert body["active"] in body["keks"]
    assert created.active_kek_id == body["active"]
    loaded = LocalKeyFile.load(path)
    assert loaded.keks == created.keks
    assert loaded.index_root() == created.index_root()
    assert len(loaded.index_root()) == 32
    assert all(len(k) == 32 for k in loaded.keks.values())


def test_create_ignores_a_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        LocalKeyFile.create(tmp_path / "registry.key")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "registry.key").stat().st_mode) == 0o600


def test_two_key_files_differ(tmp_path):
    one = LocalKeyFile.create(tmp_path / "one.key")
    two = LocalKeyFile.create(tmp_path / "two.key")
    assert one.keks != two.keks
    assert one.index_root() != two.index_root()


def test_create_refuses_to_overwrite(tmp_path):
    path = tmp_path / "registry.key"
    LocalKeyFile.create(path)
    before = path.read_bytes()
    with pytest.raises(SetupError) as caught:
        LocalKeyFile.create(path)
    assert "refusing to overwrite" in caught.value.message
    assert "拒绝覆盖" in caught.value.message_zh
    assert path.read_bytes() == before


def test_create_refuses_a_dangling_symlink(tmp_path):
    target = tmp_path / "elsewhere.key"
    link = tmp_path / "registry.key"
    link.symlink_to(target)
    with pytest.raises((SetupError, FileExistsError)):
        LocalKeyFile.create(link)
    assert not target.exists()


def test_load_missing_file(tmp_path):
    error = setup_error(tmp_path / "absent.key")
    assert "missing" in error.message
    assert "registry init" in error.message
    assert "REGISTRY_KEY_FILE" in error.message
    assert "不存在" in error.message_zh
    assert "registry init" in error.message_zh
    assert str(tmp_path / "absent.key") in error.message


@pytest.mark.parametrize("content", ["", "not json", "{", "\xff\xfe"], ids=repr)
def test_load_unreadable_file(tmp_path, content):
    path = tmp_path / "registry.key"
    path.write_bytes(content.encode("latin-1"))
    path.chmod(0o600)
    error = setup_error(path)
    assert "unreadable or not a key file" in error.message
    assert "无法读取或不是密钥文件" in error.message_zh


def test_load_a_directory(tmp_path):
    path = tmp_path / "registry.key"
    path.mkdir()
    path.chmod(0o700)
    assert "unreadable" in setup_error(path).message


@pytest.mark.parametrize("body", [
    [],
    "a string",
    42,
    None,
    {},
    key_file_body(format="registry-keyfile/0"),
    {k: v for k, v in key_file_body().items() if k != "keks"},
    {k: v for k, v in key_file_body().items() if k != "index_root"},
    {k: v for k, v in key_file_body().items() if k != "active"},
    key_file_body(keks={"kek-1": "not base64!"}),
    key_file_body(keks={"kek-1": 12345}),
    key_file_body(keks=["kek-1"]),
    key_file_body(index_root="***"),
    key_file_body(index_root=None),
], ids=lambda b: json.dumps(b)[:40])
def test_load_malformed_file(tmp_path, body):
    error = setup_error(write_key_file(tmp_path / "registry.key", body))
    assert "malformed key file" in error.message
    assert "密钥文件格式错误" in error.message_zh


@pytest.mark.parametrize("active", [["kek-1"], {"id": "kek-1"}], ids=["list", "object"])
def test_load_with_a_non_string_active_key_is_a_setup_error(tmp_path, active):
    error = setup_error(write_key_file(tmp_path / "registry.key", key_file_body(active=active)))
    assert "malformed" in error.message or "active key missing" in error.message


def test_load_active_key_not_among_the_keks(tmp_path):
    error = setup_error(write_key_file(tmp_path / "registry.key",
                                       key_file_body(active="kek-2")))
    assert "active key missing" in error.message
    assert "缺少当前主密钥" in error.message_zh


@pytest.mark.parametrize("where", ["kek", "index_root"])
@pytest.mark.parametrize("placeholder", [bytes(32), b"\x01" * 32, b"0123456" * 4 + b"0123",
                                         os.urandom(16), os.urandom(33)],
                         ids=["zeros", "ones", "seven-distinct", "short", "long"])
def test_load_refuses_placeholder_keys(tmp_path, where, placeholder):
    encoded = base64.b64encode(placeholder).decode()
    body = (key_file_body(keks={"kek-1": encoded}) if where == "kek"
            else key_file_body(index_root=encoded))
    error = setup_error(write_key_file(tmp_path / "registry.key", body))
    assert "placeholder" in error.message
    assert "占位符" in error.message_zh


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o606, 0o610, 0o601, 0o666])
def test_load_refuses_a_file_others_can_access(tmp_path, mode):
    path = tmp_path / "registry.key"
    LocalKeyFile.create(path)
    path.chmod(mode)
    error = setup_error(path)
    assert "readable by others" in error.message
    assert "chmod 600" in error.message
    assert "其他用户可读" in error.message_zh
    assert "chmod 600" in error.message_zh


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_load_accepts_owner_only_modes(tmp_path, mode):
    path = tmp_path / "registry.key"
    LocalKeyFile.create(path)
    path.chmod(mode)
    assert LocalKeyFile.load(path).active_kek_id


def test_setup_error_messages_never_carry_key_material(tmp_path):
    body = key_file_body(index_root=base64.b64encode(bytes(32)).decode())
    error = setup_error(write_key_file(tmp_path / "registry.key", body))
    assert body["keks"]["kek-1"] not in str(error)
    assert body["index_root"] not in str(error)


def test_load_with_several_keks(tmp_path):
    body = key_file_body()
    body["keks"]["kek-0"] = base64.b64encode(os.urandom(32)).decode()
    loaded = LocalKeyFile.load(write_key_file(tmp_path / "registry.key", body))
    assert set(loaded.keks) == {"kek-0", "kek-1"}
    assert loaded.active_kek_id == "kek-1"


# --- wrapping data keys --------------------------------------------------------------------


@pytest.fixture
def provider(tmp_path) -> LocalKeyFile:
    return LocalKeyFile.create(tmp_path / "registry.key")


def test_wrap_unwrap_round_trip(provider):
    dek = os.urandom(32)
    aad = uuid.uuid4().bytes
    kek_id, wrapped = provider.wrap(dek, aad=aad)
    assert kek_id == provider.active_kek_id
    assert dek not in wrapped
    assert len(wrapped) == NONCE_BYTES + 32 + TAG_BYTES
    assert provider.unwrap(kek_id, wrapped, aad=aad) == dek


def test_wrap_uses_a_fresh_nonce(provider):
    dek = os.urandom(32)
    assert provider.wrap(dek, aad=b"a")[1] != provider.wrap(dek, aad=b"a")[1]


def test_unwrap_with_other_aad_fails(provider):
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"key-1")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, wrapped, aad=b"key-2")


def test_unwrap_with_an_unknown_kek_fails(provider):
    _, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    with pytest.raises(CryptoError, match="not in the key file"):
        provider.unwrap("kek-unknown", wrapped, aad=b"a")


def test_unwrap_under_another_key_file_fails(provider, tmp_path):
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    other = LocalKeyFile.create(tmp_path / "other.key")
    keks = {kek_id: next(iter(other.keks.values()))}
    impostor = LocalKeyFile(other.path, keks, kek_id, other.index_root())
    with pytest.raises(CryptoError, match="does not open"):
        impostor.unwrap(kek_id, wrapped, aad=b"a")


def test_unwrap_binds_the_kek_id(tmp_path):
    shared = os.urandom(32)
    provider = LocalKeyFile(tmp_path / "k", {"kek-a": shared, "kek-b": shared}, "kek-a",
                            os.urandom(32))
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    assert kek_id == "kek-a"
    with pytest.raises(CryptoError):
        provider.unwrap("kek-b", wrapped, aad=b"a")


@pytest.mark.parametrize("index", [0, NONCE_BYTES, NONCE_BYTES + 40])
def test_unwrap_of_a_tampered_key_fails(provider, index):
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, flip(wrapped, index), aad=b"a")


@pytest.mark.parametrize("keep", [0, 5])
def test_unwrap_of_a_truncated_key_fails_with_crypto_error(provider, keep):
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, wrapped[:keep], aad=b"a")


def test_unwrap_of_a_key_cut_after_the_nonce_fails(provider):
    kek_id, wrapped = provider.wrap(os.urandom(32), aad=b"a")
    with pytest.raises(CryptoError):
        provider.unwrap(kek_id, wrapped[: NONCE_BYTES + 3], aad=b"a")


# --- blind indexes -------------------------------------------------------------------------


def test_blind_index_is_deterministic():
    root = os.urandom(32)
    one, two = BlindIndexer(root, 63), BlindIndexer(root, 63)
    assert one("person", "id_number", "11010519491231002X") == \
        two("person", "id_number", "11010519491231002X")
    assert one("person", "id_number", "a") == one("person", "id_number", "a")


def test_blind_index_differs_per_table_and_column():
    index = BlindIndexer(os.urandom(32), 63)
    value = "13800138000"
    seen = {index(table, column, value)
            for table, column in [("person", "phone"), ("person", "id_number"),
                                  ("resident", "phone"), ("rental_property", "address")]}
    assert len(seen) == 4


def test_blind_index_key_derivation_separates_table_and_column():
    index = BlindIndexer(os.urandom(32), 63)
    assert index("ab", "c", "v") != index("a", "bc", "v")


def test_blind_index_differs_per_value_and_per_root():
    root = os.urandom(32)
    index = BlindIndexer(root, 63)
    assert index("person", "phone", "13800138000") != index("person", "phone", "13800138001")
    assert index("person", "phone", "13800138000") != \
        BlindIndexer(os.urandom(32), 63)("person", "phone", "13800138000")


@pytest.mark.parametrize("bits", [8, 12, 16, 32, 63])
def test_blind_index_respects_bits(bits):
    index = BlindIndexer(os.urandom(32), bits)
    values = [index("person", "id_number", f"value-{n}") for n in range(2000)]
    assert all(0 <= v < 2 ** bits for v in values)
    if bits <= 12:
        assert len(set(values)) <= 2 ** bits
    # The top bit is used: values are spread over the whole range, not its lower half.
    assert max(values) >= 2 ** (bits - 1)


def test_blind_index_truncation_is_a_prefix_of_the_full_digest():
    root = os.urandom(32)
    full = BlindIndexer(root, 63)("person", "id_number", "x")
    short = BlindIndexer(root, 16)("person", "id_number", "x")
    assert short == full >> (63 - 16)


def test_blind_index_with_few_bits_has_collisions():
    index = BlindIndexer(os.urandom(32), 8)
    values = {index("person", "id_number", f"{n:018d}") for n in range(2000)}
    assert len(values) <= 256


def test_fingerprint_identifies_the_root_and_not_bits():
    root = os.urandom(32)
    assert BlindIndexer(root, 16).fingerprint() == BlindIndexer(root, 63).fingerprint()
    assert BlindIndexer(root, 16).fingerprint() != BlindIndexer(os.urandom(32), 16).fingerprint()
    assert len(BlindIndexer(root, 16).fingerprint()) == 32
    assert root.hex()[:16] not in BlindIndexer(root, 16).fingerprint()


# --- the keyring's sealing, without a database ---------------------------------------------


def make_settings(tmp_path, **overrides) -> Settings:
    values = dict(environment="test", data_dir=tmp_path, key_file=tmp_path / "registry.key")
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("cipher, alg", [(CipherName.aes_256_gcm, Algorithm.aes_256_gcm),
                                         (CipherName.sm4_gcm, Algorithm.sm4_gcm)])
def test_keyring_seals_with_the_configured_cipher(tmp_path, provider, cipher, alg):
    keyring = Keyring(provider, make_settings(tmp_path, cipher=cipher))
    assert keyring.algorithm is alg
    key_id, dek = uuid.uuid4(), os.urandom(32)
    sealed = keyring.seal(key_id, dek, "person", "name", ROW, "王小明")
    assert sealed[1] == alg
    assert "王小明".encode() not in sealed
    assert keyring.open(sealed, {key_id: dek}, "person", "name", ROW) == "王小明"
    with pytest.raises(CryptoError):
        keyring.open(sealed, {key_id: dek}, "person", "name", OTHER_ROW)


def test_keyring_refuses_a_missing_data_key(tmp_path, provider):
    keyring = Keyring(provider, make_settings(tmp_path))
    key_id = uuid.uuid4()
    sealed = keyring.seal(key_id, os.urandom(32), "person", "name", ROW, "王小明")
    with pytest.raises(CryptoError, match="data key missing or destroyed"):
        keyring.open(sealed, {}, "person", "name", ROW)


def test_keyring_blind_index_uses_the_configured_bits(tmp_path, provider):
    keyring = Keyring(provider, make_settings(tmp_path, blind_index_bits=10))
    assert keyring.index.bits == 10
    assert 0 <= keyring.index("person", "id_number", "x") < 2 ** 10


def test_keyring_bench_plaintext(tmp_path, provider):
    keyring = Keyring(provider, make_settings(tmp_path, bench_plaintext=True))
    assert keyring.algorithm is Algorithm.plaintext
    sealed = keyring.seal(uuid.uuid4(), b"", "person", "name", ROW, "王小明")
    assert sealed[1] == Algorithm.plaintext
    assert sealed[HEADER_BYTES:] == "王小明".encode()
    assert keyring.open(sealed, {}, "person", "name", ROW) == "王小明"


@pytest.mark.parametrize("environment", ["development", "production"])
def test_bench_plaintext_is_refused_outside_tests(tmp_path, environment):
    with pytest.raises(ValueError, match="REGISTRY_BENCH_PLAINTEXT"):
        make_settings(tmp_path, bench_plaintext=True, environment=environment)
