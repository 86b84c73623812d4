"""Keys in a hardware security module, over PKCS#11.

The key-encryption keys are AES-256 secret-key objects generated inside the token — token
objects, private, sensitive, never extractable, unmodifiable, good for encrypt and decrypt only
— labelled ``<prefix>kek-<UTC time to the microsecond>-<hex>``. The part after the prefix is the
KEK id (at most 32 characters), so ids sort by creation and the newest is the active one:
rotation adds a newer one, retirement destroys an old one. Wrapping a data key is ``C_Encrypt``
with ``CKM_AES_GCM`` inside the token, with the data key's id and the KEK id as associated
data, in the key file's layout (``nonce | ciphertext+tag``); unwrapping is ``C_Decrypt``, so a
wrong aad, a wrong KEK or a tampered value fails inside the token. The index root is the
HMAC-SHA256 (``CKM_SHA256_HMAC``) of a fixed label under a generic-secret object that never
leaves the token either, one per index-root version: ``<prefix>index`` is version 1,
``<prefix>index-<n>`` version n, and the newest is the active one (``registry keys
rotate-index`` adds one; retirement destroys an old one). The roots, and the checkpoint key
derived from version 1's, live in process memory, since every blind-index lookup needs them.
Version 1's object is the checkpoint key's seed for good, so retiring version 1 takes it out of
index use (the database forgets it) but leaves the object in the token: destroying it would
change the key that signed the audit checkpoints. A key object that is extractable or not
sensitive is refused, so the property holds whoever created the keys.

PKCS#11 login belongs to the process, per token: providers for one token share one logged-in
session (a second provider with another PIN is refused without asking the token again).
python-pkcs11 initialises the module without OS locking, so every call into it holds that
session's lock.
"""

from __future__ import annotations

import hmac
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pkcs11
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pkcs11 import Attribute, GCMParams, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import (
    MultipleTokensReturned,
    NoSuchToken,
    PinIncorrect,
    PinInvalid,
    PinLenRange,
    PinLocked,
    PKCS11Error,
)

from registry.errors import SetupError, Unavailable
from registry.security.crypto import NONCE_BYTES, TAG_BYTES, CryptoError, checkpoint_key_from

INDEX_ROOT_LABEL = b"registry-index-root/v1"
KEK_PREFIX = "kek-"
INDEX_NAME = "index"
# How stale the list of KEK versions may get before a wrap looks again: a process that did not
# rotate starts wrapping under the new version within this long (`registry keys rotate` takes
# what it wrapped under the old one in its later passes).
FOLLOW_SECONDS = 10
# Every key object the registry creates: in the token, behind the PIN, never in the clear.
PROTECTED = {Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
             Attribute.EXTRACTABLE: False, Attribute.MODIFIABLE: False}


@dataclass
class _Login:
    """A process's logged-in session with one token; every call into the module holds
    ``lock``. ``pin_digest`` lets a later provider's PIN be compared without keeping it."""

    session: pkcs11.Session
    pin_digest: bytes
    lock: threading.RLock = field(default_factory=threading.RLock)


_logins: dict[tuple[str, str], _Login] = {}
_logins_lock = threading.Lock()
_PIN_KEY = os.urandom(32)  # keys the PIN digests: no PIN, nor a plain hash of one, is kept


def _index_name(version: int) -> str:
    return INDEX_NAME if version == 1 else f"{INDEX_NAME}-{version}"


def _login(module: Path, token_label: str, pin: str) -> _Login:
    digest = hmac.digest(_PIN_KEY, pin.encode(), "sha256")
    with _logins_lock:
        login = _logins.get((str(module), token_label))
        if login is None:
            login = _logins[(str(module), token_label)] = _Login(
                _open_session(module, token_label, pin), digest)
    if not hmac.compare_digest(login.pin_digest, digest):
        raise _wrong_pin(token_label)
    return login


def _open_session(module: Path, token_label: str, pin: str) -> pkcs11.Session:
    if not module.is_file():
        raise SetupError(f"PKCS#11 module {module} not found (REGISTRY_PKCS11_MODULE)",
                         f"未找到 PKCS#11 模块 {module}（REGISTRY_PKCS11_MODULE）")
    try:
        library = pkcs11.lib(str(module))
    except PKCS11Error as exc:
        raise SetupError(f"{module} is not a loadable PKCS#11 module (REGISTRY_PKCS11_MODULE)",
                         f"{module} 不是可加载的 PKCS#11 模块（REGISTRY_PKCS11_MODULE）") from exc
    try:
        token = library.get_token(token_label=token_label)
    except (NoSuchToken, MultipleTokensReturned) as exc:
        many = isinstance(exc, MultipleTokensReturned)
        raise SetupError(
            f"PKCS#11 module {module} has {'several tokens' if many else 'no token'} labelled "
            f"{token_label!r} (REGISTRY_PKCS11_TOKEN_LABEL)",
            f"PKCS#11 模块 {module} 中{'有多个' if many else '没有'}标签为 {token_label!r} 的令牌"
            "（REGISTRY_PKCS11_TOKEN_LABEL）") from exc
    except PKCS11Error as exc:
        raise SetupError(f"PKCS#11 module {module} failed to list its tokens "
                         f"({type(exc).__name__})",
                         f"PKCS#11 模块 {module} 无法列出令牌（{type(exc).__name__}）") from exc
    try:
        return token.open(rw=True, user_pin=pin)
    except (PinIncorrect, PinInvalid, PinLenRange) as exc:
        raise _wrong_pin(token_label) from exc
    except PinLocked as exc:
        raise SetupError(f"token {token_label!r}: the user PIN is locked; the token's security "
                         "officer must unlock it",
                         f"令牌 {token_label!r}：用户 PIN 已锁定，需由令牌安全管理员解锁") from exc
    except PKCS11Error as exc:
        raise SetupError(f"token {token_label!r} refused a session ({type(exc).__name__})",
                         f"令牌 {token_label!r} 拒绝建立会话（{type(exc).__name__}）") from exc


def _wrong_pin(token_label: str) -> SetupError:
    return SetupError(
        f"token {token_label!r} refused the PIN: wrong PIN "
        "(REGISTRY_PKCS11_PIN or REGISTRY_PKCS11_PIN_FILE)",
        f"令牌 {token_label!r} 拒绝了 PIN：PIN 错误"
        "（REGISTRY_PKCS11_PIN 或 REGISTRY_PKCS11_PIN_FILE）")


class Pkcs11Provider:
    """The :class:`~registry.security.crypto.KeyProvider` over a PKCS#11 token."""

    active_kek_id: str

    def __init__(self, login: _Login, *, token_label: str, prefix: str,
                 create: bool = False) -> None:
        self._login = login
        self._token = token_label
        self._prefix = prefix
        self.created: list[str] = []  # what ``create`` had to make: for ``registry init``
        self._roots: dict[int, bytes] = {}
        with login.lock:
            self._load_index()
            if 1 not in self._index and create:
                self._index = {**self._index, 1: self._generate(
                    KeyType.GENERIC_SECRET, INDEX_NAME, MechanismFlag.SIGN)}
                self.created.append("the index secret")
            self._load_keks()
            if not self._keks and create:
                self.new_kek()
                self.created.append("a key-encryption key")
            if 1 not in self._index:
                raise self._missing("index secret", INDEX_NAME)
            if not self._keks:
                raise self._missing("key-encryption key", KEK_PREFIX + "…")
            self._seed_root = self._derive(1)

    @classmethod
    def open(cls, *, module: Path, token_label: str, pin: str, prefix: str,
             create: bool = False) -> Pkcs11Provider:
        """Log in (once per process and token) and find the keys; with ``create``, generate
        those the token lacks (``registry init`` on a database that holds no data yet)."""
        return cls(_login(module, token_label, pin), token_label=token_label, prefix=prefix,
                   create=create)

    def __repr__(self) -> str:
        return f"<Pkcs11Provider token={self._token!r} active={self.active_kek_id!r}>"

    # --- KeyProvider -----------------------------------------------------------------------

    def kek_ids(self) -> list[str]:
        return sorted(self._keks)

    def wrap(self, dek: bytes, *, aad: bytes) -> tuple[str, bytes]:
        if time.monotonic() - self._loaded_at > FOLLOW_SECONDS:  # a rotation elsewhere?
            with self._login.lock:
                self._load_keks()
        kek_id = self.active_kek_id
        kek = self._keks[kek_id]
        nonce = os.urandom(NONCE_BYTES)
        with self._hsm("wrap a data key"):
            body = kek.encrypt(dek, mechanism=Mechanism.AES_GCM,
                               mechanism_param=GCMParams(nonce, aad + kek_id.encode()))
        return kek_id, nonce + body

    def unwrap(self, kek_id: str, wrapped: bytes, *, aad: bytes) -> bytes:
        if kek_id not in self._keks:  # perhaps made by a rotation in another process
            with self._login.lock:
                self._load_keks()
        kek = self._keks.get(kek_id)
        if kek is None:
            raise CryptoError(f"key-encryption key {kek_id} is not in the token")
        if len(wrapped) < NONCE_BYTES + TAG_BYTES:
            raise CryptoError(f"data key does not open under {kek_id}")
        param = GCMParams(bytes(wrapped[:NONCE_BYTES]), aad + kek_id.encode())
        try:
            with self._login.lock:
                return kek.decrypt(bytes(wrapped[NONCE_BYTES:]), mechanism=Mechanism.AES_GCM,
                                   mechanism_param=param)
        except PKCS11Error as exc:  # SoftHSM says GeneralError for a bad tag; others vary
            raise CryptoError(f"data key does not open under {kek_id}") from exc

    def new_kek(self) -> str:
        with self._login.lock:
            self._load_keks()
            kek_id = f"{KEK_PREFIX}{datetime.now(UTC):%Y%m%d%H%M%S%f}-{secrets.token_hex(2)}"
            if self._keks and kek_id <= self.active_kek_id:
                raise SetupError(
                    f"the clock is behind the newest key-encryption key {self.active_kek_id}; "
                    "a new one must sort after it",
                    f"系统时间早于最新主密钥 {self.active_kek_id} 的创建时间，无法创建新主密钥")
            kek = self._generate(KeyType.AES, kek_id, MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT)
            self._keks = {**self._keks, kek_id: kek}
            self.active_kek_id = kek_id
        return kek_id

    def retire_kek(self, kek_id: str) -> None:
        with self._login.lock:
            self._load_keks()
            if kek_id == self.active_kek_id:
                raise SetupError(
                    f"{kek_id} is the active key-encryption key; it cannot be retired",
                    f"{kek_id} 是当前主密钥，不能退役")
            kek = self._keks.get(kek_id)
            if kek is not None:
                with self._hsm("destroy a key-encryption key"):
                    kek.destroy()
                self._keks = {k: v for k, v in self._keks.items() if k != kek_id}

    def index_versions(self) -> list[int]:
        with self._login.lock:
            self._load_index()
        return sorted(self._index)

    def index_root(self, version: int | None = None) -> bytes:
        if version is None:
            version = max(self._index)
        root = self._roots.get(version)
        if root is None:
            if version not in self._index:  # perhaps made by a rotation in another process
                with self._login.lock:
                    self._load_index()
            if version not in self._index:
                raise CryptoError(f"index key version {version} is not in the token")
            root = self._roots[version] = self._derive(version)
        return root

    def new_index_root(self) -> int:
        with self._login.lock:
            self._load_index()
            version = max(self._index) + 1
            secret = self._generate(KeyType.GENERIC_SECRET, _index_name(version),
                                    MechanismFlag.SIGN)
            self._index = {**self._index, version: secret}
        return version

    def retire_index_root(self, version: int) -> None:
        """Destroy an old version's secret — except version 1's, the checkpoint key's seed,
        which stays in the token (see the module docstring)."""
        with self._login.lock:
            self._load_index()
            if version == max(self._index):
                raise SetupError(
                    f"index key version {version} is the active one; it cannot be retired",
                    f"第 {version} 版索引密钥是当前版本，不能退役")
            self._roots.pop(version, None)
            secret = self._index.get(version)
            if secret is not None and version != 1:
                with self._hsm("destroy an index secret"):
                    secret.destroy()
                self._index = {v: k for v, k in self._index.items() if v != version}

    def checkpoint_key(self) -> Ed25519PrivateKey:
        return checkpoint_key_from(self._seed_root)

    # --- the token -------------------------------------------------------------------------

    @contextmanager
    def _hsm(self, what: str) -> Iterator[pkcs11.Session]:
        """The logged-in session, under its lock; a failing call is the module's outage."""
        try:
            with self._login.lock:
                yield self._login.session
        except PKCS11Error as exc:
            raise Unavailable(
                f"the hardware security module (token {self._token!r}) failed to {what} "
                f"({type(exc).__name__})",
                f"硬件安全模块（令牌 {self._token!r}）操作失败（{type(exc).__name__}）",
            ) from exc

    def _load_keks(self) -> None:
        """Find the KEK versions by label; the newest is the active one."""
        start = self._prefix + KEK_PREFIX
        keks = {}
        with self._hsm("list its keys") as session:
            for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                            Attribute.KEY_TYPE: KeyType.AES}):
                label = key.label
                if label.startswith(start):
                    keks[label[len(self._prefix):]] = self._protected(key, label)
        too_long = [kek_id for kek_id in keks if len(kek_id) > 32]
        if too_long:
            raise SetupError(f"token {self._token!r}: key-encryption key id {too_long[0]!r} is "
                             "longer than 32 characters",
                             f"令牌 {self._token!r}：主密钥标识 {too_long[0]!r} 超过 32 个字符")
        self._keks = keks
        self._loaded_at = time.monotonic()
        if keks:
            self.active_kek_id = max(keks)

    def _load_index(self) -> None:
        """Find the index secrets by label: ``<prefix>index`` (version 1), ``<prefix>index-<n>``."""
        start = self._prefix + INDEX_NAME
        secrets_found: dict[int, pkcs11.SecretKey] = {}
        with self._hsm("find the index secret") as session:
            for key in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                            Attribute.KEY_TYPE: KeyType.GENERIC_SECRET}):
                label = key.label
                rest = label[len(start) + 1:]
                if label == start:
                    version = 1
                elif label.startswith(start + "-") and rest.isdigit() and int(rest) > 1:
                    version = int(rest)
                else:
                    continue
                if version in secrets_found:
                    raise SetupError(
                        f"token {self._token!r} holds several keys labelled {label!r}",
                        f"令牌 {self._token!r} 中有多个标签为 {label!r} 的密钥")
                secrets_found[version] = self._protected(key, label)
        self._index = secrets_found
        self._roots = {v: root for v, root in self._roots.items() if v in secrets_found}

    def _derive(self, version: int) -> bytes:
        with self._hsm("derive the index root"):
            return self._index[version].sign(INDEX_ROOT_LABEL, mechanism=Mechanism.SHA256_HMAC)

    def _protected(self, key: pkcs11.SecretKey, label: str) -> pkcs11.SecretKey:
        """``key``, if the token vouches that it never leaves the module."""
        if not key[Attribute.SENSITIVE] or key[Attribute.EXTRACTABLE]:
            raise SetupError(
                f"key {label!r} in token {self._token!r} is extractable or not sensitive; "
                "refusing to use it (keys must never leave the module)",
                f"令牌 {self._token!r} 中的密钥 {label!r} 可导出或非敏感，拒绝使用"
                "（密钥不得离开安全模块）")
        return key

    def _generate(self, key_type: KeyType, name: str,
                  capabilities: MechanismFlag) -> pkcs11.SecretKey:
        label = self._prefix + name
        try:
            with self._login.lock:
                return self._login.session.generate_key(
                    key_type, 256, id=name.encode(), label=label, store=True,
                    capabilities=capabilities, template=PROTECTED)
        except PKCS11Error as exc:
            raise SetupError(
                f"token {self._token!r} could not generate key {label!r} ({type(exc).__name__})",
                f"令牌 {self._token!r} 无法生成密钥 {label!r}（{type(exc).__name__}）") from exc

    def _missing(self, what: str, name: str) -> SetupError:
        label = self._prefix + name
        return SetupError(
            f"token {self._token!r} holds no {what} labelled {label!r}: `registry init` creates "
            "the keys for a new database; an existing one needs the token (and "
            "REGISTRY_PKCS11_KEY_LABEL_PREFIX) its data was encrypted under",
            f"令牌 {self._token!r} 中没有标签为 {label!r} 的密钥：新数据库请运行 `registry init` "
            "创建密钥；已有数据库需要加密其数据时所用的令牌（及 REGISTRY_PKCS11_KEY_LABEL_PREFIX）")
