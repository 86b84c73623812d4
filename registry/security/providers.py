"""The key provider the settings name: the key file (the default) or a PKCS#11 token."""

from __future__ import annotations

import stat

from registry.config import KeyProviderName, Settings
from registry.errors import SetupError
from registry.security.crypto import KeyProvider, LocalKeyFile
from registry.security.pkcs11 import Pkcs11Provider


def provider_from_settings(settings: Settings) -> KeyProvider:
    if settings.key_provider is KeyProviderName.pkcs11:
        return open_token(settings)
    return LocalKeyFile.load(settings.resolved_key_file)


def open_token(settings: Settings, *, create: bool = False) -> Pkcs11Provider:
    """The PKCS#11 provider; with ``create``, the keys the token lacks are generated in it."""
    assert settings.pkcs11_module is not None and settings.pkcs11_token_label is not None
    return Pkcs11Provider.open(module=settings.pkcs11_module,
                               token_label=settings.pkcs11_token_label, pin=pin(settings),
                               prefix=settings.pkcs11_key_label_prefix, create=create)


def pin(settings: Settings) -> str:
    """The token's user PIN: REGISTRY_PKCS11_PIN, or the first line of the file (mode 0600)
    named by REGISTRY_PKCS11_PIN_FILE. Errors name the file, never the PIN."""
    if settings.pkcs11_pin is not None:
        return settings.pkcs11_pin.get_secret_value()
    path = settings.pkcs11_pin_file
    assert path is not None
    try:
        mode = path.stat().st_mode
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"PIN file {path} is missing or unreadable (REGISTRY_PKCS11_PIN_FILE)",
                         f"PIN 文件 {path} 不存在或无法读取（REGISTRY_PKCS11_PIN_FILE）") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SetupError(f"PIN file {path} is readable by others; chmod 600 it",
                         f"PIN 文件 {path} 其他用户可读，请执行 chmod 600")
    if not lines or not lines[0]:
        raise SetupError(f"PIN file {path} is empty", f"PIN 文件 {path} 为空")
    return lines[0]
