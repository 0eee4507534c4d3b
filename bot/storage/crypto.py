"""Authenticated encryption of secrets at rest, bound to the row they belong to.

A token is ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``. The key id lets several
keys coexist (rotation); the associated data (``context``) binds a ciphertext to its chat
and field, so one copied into another row does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

_VERSION = "v1"
_NONCE_BYTES = 12
KEY_FILE_NAME = "encryption.key"


class KeyConfigError(ValueError):
    """A configured key is not 32 bytes of URL-safe base64."""


class DecryptError(Exception):
    """No configured key opens this token for this context (wrong key, row or tampering)."""


def generate_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii")


def parse_key(text: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii") + b"==")
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise KeyConfigError("a key is not URL-safe base64") from exc
    if len(raw) != 32:
        raise KeyConfigError(f"a key must be 32 bytes, this one is {len(raw)}")
    return raw


def key_id(key: bytes) -> str:
    # A short one-way label: tells keys apart without revealing anything about them.
    return hashlib.sha256(b"spaces-bridge/key-id/" + key).hexdigest()[:8]


class Cipher:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise KeyConfigError("at least one key is needed")
        self._keys = {key_id(k): AESGCM(k) for k in keys}
        self.primary_id = key_id(keys[0])
        self._primary = self._keys[self.primary_id]

    @classmethod
    def from_strings(cls, keys: Sequence[str]) -> Cipher:
        return cls([parse_key(k) for k in keys])

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def encrypt(self, plaintext: str, *, context: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._primary.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        body = base64.urlsafe_b64encode(nonce + sealed).decode("ascii").rstrip("=")
        return f"{_VERSION}.{self.primary_id}.{body}"

    def decrypt(self, token: str, *, context: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
        except ValueError:
            raise DecryptError("not a token") from None
        aead = self._keys.get(kid)
        if version != _VERSION or aead is None:
            raise DecryptError(f"no configured key has id {kid!r}")
        try:
            blob = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = aead.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], context.encode())
        except (InvalidTag, ValueError, binascii.Error):
            raise DecryptError("token does not open for this context") from None
        return plain.decode("utf-8")

    def is_current(self, token: str) -> bool:
        return token.startswith(f"{_VERSION}.{self.primary_id}.")


def resolve_keys(configured: Sequence[str], data_dir: Path) -> list[str]:
    """The configured keys, else the key kept in the data folder, else a new one kept there."""
    if configured:
        return list(configured)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        return [path.read_text(encoding="ascii").strip()]
    data_dir.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key + "\n")
    log.warning(
        "ENCRYPTION_KEY is not set: generated a key into %s (mode 0600). Back it up with the "
        "database, or set ENCRYPTION_KEY; without it the stored sessions cannot be read.",
        path,
    )
    return [key]
