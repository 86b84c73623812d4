"""The column type for personal data: it stores only :class:`Ciphertext` and refuses anything
else, so a code path that forgets to encrypt fails loudly instead of writing plaintext."""

from __future__ import annotations

from sqlalchemy import LargeBinary
from sqlalchemy.types import TypeDecorator

from registry.security.crypto import Ciphertext


class PlaintextRefused(TypeError):
    pass


class Sealed(TypeDecorator):
    impl = LargeBinary
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, Ciphertext):
            raise PlaintextRefused("sealed columns accept only Ciphertext")
        return bytes(value)

    def process_result_value(self, value, dialect):
        return None if value is None else Ciphertext(value)
