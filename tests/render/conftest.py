"""dkimpy verifies our signatures. Its Ed25519 path needs PyNaCl; when that is not installed, a
small stand-in built on `cryptography` gives dkimpy the same two calls it makes."""

from __future__ import annotations

import base64
import types
from collections.abc import Iterator

import dkim
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519


class _BadSignatureError(Exception):
    pass


class _VerifyKey:
    def __init__(self, key: bytes, encoder: object = None) -> None:
        self._key = ed25519.Ed25519PublicKey.from_public_bytes(base64.b64decode(key))

    def verify(self, message: bytes, signature: bytes) -> bytes:
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise _BadSignatureError from None
        return message


_NACL = types.SimpleNamespace(
    signing=types.SimpleNamespace(VerifyKey=_VerifyKey),
    encoding=types.SimpleNamespace(Base64Encoder=None),
    exceptions=types.SimpleNamespace(BadSignatureError=_BadSignatureError, ValueError=ValueError),
)


@pytest.fixture(autouse=True)
def _dkimpy_can_verify_ed25519(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not hasattr(dkim, "nacl"):
        monkeypatch.setattr(dkim, "nacl", _NACL, raising=False)
    yield
