"""DKIM signing: RFC 6376 with relaxed/relaxed canonicalization, RSA-SHA256 and Ed25519-SHA256
(RFC 8463), on the `cryptography` package.

Canonicalization is written here as small pure functions (tested against the RFC examples)
rather than borrowed from a verifier library, so signing needs nothing beyond `cryptography`.
`From` is oversigned (listed once more than present) so no second From can be added to a
signed message without breaking the signature. Loaded keys are cached: signing is per message.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

__all__ = [
    "SIGNED_HEADERS",
    "DkimSigner",
    "generate_key",
    "public_txt_value",
    "relaxed_body",
    "relaxed_header",
    "split_message",
]

SIGNED_HEADERS: tuple[str, ...] = (
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version",
    "Content-Type", "Content-Transfer-Encoding", "List-Unsubscribe", "List-Unsubscribe-Post",
    "In-Reply-To", "References",
)  # fmt: skip
_WSP_RUN = re.compile(rb"[ \t]+")
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
# Line ends as the SMTP client sends them: it makes a bare CR, like a bare LF, a CRLF
# (`smtp.client_message.normalise_crlf`), so a signature that took a bare CR for text broke.
_LINE_END = re.compile(rb"\r\n?|\n")
_BLANK_LINE = re.compile(rb"(?:\r\n|\r(?!\n)|\n){2}")  # (a CRLF is never a bare CR + LF)


# --- canonicalization (RFC 6376 §3.4) ----------------------------------------------------------
def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Header fields as (name, raw value after the colon, folding kept) and the body.
    Accepts CRLF, bare LF or bare CR line ends."""
    if message.startswith((b"\r\n", b"\n")):
        head, body = b"", message.split(b"\n", 1)[1]
    else:
        end = _BLANK_LINE.search(message)
        head, body = (message[: end.start()], message[end.end() :]) if end else (message, b"")
    fields: list[tuple[bytes, bytes]] = []
    for line in _LINE_END.split(head) if head else []:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields, body


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """§3.4.2: lowercase name, unfold, collapse WSP runs, trim around the colon and the end."""
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """§3.4.4: collapse WSP runs, drop WSP at line ends and empty lines at the end; a non-empty
    body ends in CRLF, an empty one is empty."""
    lines = [_WSP_RUN.sub(b" ", line).rstrip(b" ") for line in _LINE_END.split(body)]
    while lines and not lines[-1]:
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def select_headers(
    fields: Sequence[tuple[bytes, bytes]], names: Iterable[str]
) -> list[tuple[bytes, bytes]]:
    """The instances `h=` names, in `h=` order; repeated names take instances bottom-up
    (§5.4.2) and names with no instance left contribute nothing."""
    used: dict[str, int] = {}
    out = []
    for name in names:
        key = name.lower()
        instances = [f for f in fields if f[0].strip().lower().decode("latin-1") == key]
        n = used.get(key, 0)
        used[key] = n + 1
        if n < len(instances):
            out.append(instances[len(instances) - 1 - n])
    return out


# --- keys --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=64)
def _load_key(pem: bytes, algorithm: str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if algorithm == "rsa-sha256" and isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 1024:
            raise ValueError("RSA DKIM keys must be at least 1024 bits (2048 recommended)")
        return key
    if algorithm == "ed25519-sha256" and isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise ValueError(f"the private key does not fit algorithm {algorithm!r}")


def public_txt_value(key: PrivateKey) -> str:
    """The DNS TXT value publishing `key`'s public half (§3.6.1; RFC 8463 §4.2 for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode()}"


def generate_key(algorithm: Algorithm = "rsa-sha256", *, bits: int = 2048) -> tuple[bytes, str]:
    """A new key pair: (PKCS#8 PEM private key, DNS TXT value for selector._domainkey)."""
    key: PrivateKey
    if algorithm == "rsa-sha256":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    elif algorithm == "ed25519-sha256":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return pem, public_txt_value(key)


# --- signing -----------------------------------------------------------------------------------
class DkimSigner:
    """Signs messages for one domain and selector. Reuse it: the key is parsed once."""

    def __init__(
        self,
        domain: str,
        selector: str,
        private_key_pem: bytes,
        algorithm: Algorithm = "rsa-sha256",
        *,
        headers: Sequence[str] = SIGNED_HEADERS,
        oversign: Sequence[str] = ("From",),
    ) -> None:
        if algorithm not in ("rsa-sha256", "ed25519-sha256"):
            raise ValueError(f"unknown DKIM algorithm {algorithm!r}")
        domain = domain.strip().rstrip(".").lower()
        self.domain = domain if domain.isascii() else domain.encode("idna").decode("ascii")
        self.selector = selector.strip()
        self.algorithm: Algorithm = algorithm
        self._key = _load_key(bytes(private_key_pem), algorithm)
        self._headers = tuple(headers)
        self._oversign = {h.lower() for h in oversign}

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    @property
    def dns_txt_value(self) -> str:
        return public_txt_value(self._key)

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """The `DKIM-Signature:` field for `message`, folded and CRLF-terminated, to prepend."""
        fields, body = split_message(message)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode()
        present = [f[0].strip().lower().decode("latin-1") for f in fields]
        names: list[str] = []
        for name in self._headers:
            count = present.count(name.lower())
            names += [name] * (count + (name.lower() in self._oversign))
        tags = [
            ("v", "1"),
            ("a", self.algorithm),
            ("c", "relaxed/relaxed"),
            ("d", self.domain),
            ("s", self.selector),
            ("t", str(int(time.time()) if timestamp is None else timestamp)),
            ("h", ":".join(names)),
            ("bh", body_hash),
        ]
        unsigned = _fold_field(tags)
        data = b"".join(relaxed_header(n, v) for n, v in select_headers(fields, names))
        name, _, value = unsigned.partition(":")
        data += relaxed_header(name.encode(), value.encode())[:-2]  # no CRLF after b= (§3.7)
        signature = base64.b64encode(self._sign(data)).decode()
        chunks = [signature[i : i + 72] for i in range(0, len(signature), 72)]
        return (unsigned + "\r\n\t ".join(chunks) + "\r\n").encode("ascii")

    def _sign(self, data: bytes) -> bytes:
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            # RFC 8463 §3: Ed25519 signs the SHA-256 hash of the data, not the data itself.
            return self._key.sign(hashlib.sha256(data).digest())
        return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _fold_field(tags: Sequence[tuple[str, str]], width: int = 76) -> str:
    """ "DKIM-Signature: tag=value; …" folded between tags (and inside h= at its colons), ending
    with an empty "b=" on its own line, ready for the signature."""
    lines = ["DKIM-Signature:"]
    for name, value in [*tags, ("b", "")]:
        if name == "h":
            parts = [p + ":" for p in value.split(":")]
            parts[0] = "h=" + parts[0]
            parts[-1] = parts[-1][:-1] + ";"
        else:
            parts = [f"{name}={value}" + (";" if name != "b" else "")]
        for i, part in enumerate(parts):
            sep = " " if i == 0 else ""
            too_long = len(lines[-1]) + len(sep) + len(part) > width
            if too_long or name == "b":  # b= starts a line so its value folds evenly
                lines.append("\t" + part)
            else:
                lines[-1] += sep + part
    return "\r\n".join(lines)
