"""API keys: generated with 256 bits of entropy, stored as SHA-256 only, shown once.

A slow password hash (bcrypt, argon2) protects low-entropy secrets chosen by people; these keys
are random, so one SHA-256 is both safe and cheap enough to run on every SMTP AUTH.
"""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "pr_"


def generate_key() -> tuple[str, str, str]:
    """Return (key, key_hash, display_prefix). Only the hash and prefix are ever stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, hash_key(key), key[:11]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def looks_like_key(value: str) -> bool:
    return 16 <= len(value) <= 512
