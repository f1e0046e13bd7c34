"""DKIM signing: canonicalization against the RFC examples, signatures verified by dkimpy."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.render.dkim import (
    DkimSigner,
    _load_key,
    generate_key,
    relaxed_body,
    relaxed_header,
    select_headers,
    split_message,
)
from support.dns_stub import DnsStub

ALGORITHMS = ["rsa-sha256", "ed25519-sha256"]
KEYS = {alg: generate_key(alg) for alg in ALGORITHMS}  # type: ignore[arg-type]

# RFC 8463 Appendix A: the RFC 8032 test key and the example message it signs.
RFC8463_SEED = base64.b64decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
RFC8463_PUBLIC = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
RFC8463_MESSAGE = (
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    b"\r\n"
    b"Hi.\r\n"
    b"\r\n"
    b"We lost the game.  Are you hungry yet?\r\n"
    b"\r\n"
    b"Joe.\r\n"
)
RFC8463_SIGNATURE = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    b" subject : date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
)

BASE_HEADERS = (
    b"From: Sender <sender@example.com>\r\n"
    b"To: Rcpt <rcpt@example.org>\r\n"
    b"Subject: Hello\r\n"
    b"Date: Mon, 06 May 2024 07:08:09 +0000\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
)
MESSAGES = {
    "plain": BASE_HEADERS + b"\r\nHello there.\r\n\r\nBye.\r\n",
    "8bit": BASE_HEADERS.replace(b"Subject: Hello", "Subject: Grüße, café ☕".encode())
    + b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    + "Ça va? Ünïcödé body — 日本語\r\n".encode(),
    "long-headers": BASE_HEADERS.replace(
        b"To: Rcpt <rcpt@example.org>",
        b"To: " + b",\r\n ".join(b"User %d <user%d@example.org>" % (i, i) for i in range(60)),
    )
    + b"References: "
    + b" ".join(b"<ref-%d-abcdefghijklmnop@example.com>" % i for i in range(40))
    + b"\r\nList-Unsubscribe: <https://example.com/u/abc>, <mailto:u@example.com>\r\n"
    + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nbody\r\n",
    "folded": b"From:   Sender\r\n\t <sender@example.com>  \r\n"
    b"To: rcpt@example.org\r\n"
    b"Subject:  lots   of\t\tspace \r\n   and a fold  \r\n"
    b"Cc: a@example.org,\r\n\tb@example.org\r\n"
    b"X-Unsigned: whatever\r\n"
    b"\r\n"
    b"  indented   line  \t\r\ntrailing ws \t \r\n\r\n\r\n",
    "empty-body": BASE_HEADERS + b"\r\n",
    "no-body-separator": BASE_HEADERS,
    "lf-only": BASE_HEADERS.replace(b"\r\n", b"\n") + b"\nline one\nline two\n",
    "repeated-headers": BASE_HEADERS
    + b"Received: from a by b\r\nTo: second@example.org\r\nReply-To: r@example.com\r\n"
    + b"In-Reply-To: <p@example.com>\r\n\r\nbody",
}


def dnsfunc_for(txt: str) -> Callable[..., bytes]:
    def dnsfunc(name: bytes, timeout: float = 5) -> bytes:
        assert name.rstrip(b".") == b"sel._domainkey.example.com"
        return txt.encode()

    return dnsfunc


def sign_and_verify(message: bytes, algorithm: str) -> tuple[bytes, bool]:
    pem, txt = KEYS[algorithm]
    header = DkimSigner("example.com", "sel", pem, algorithm).sign(message)  # type: ignore[arg-type]
    return header, dkim.verify(header + message, dnsfunc=dnsfunc_for(txt))


def tags(header: bytes) -> dict[str, str]:
    value = header.split(b":", 1)[1].decode()
    out = {}
    for part in value.split(";"):
        if "=" in part:
            k, _, v = part.partition("=")
            out[k.strip()] = "".join(v.split())
    return out


# --- canonicalization ---------------------------------------------------------------------------
def test_rfc6376_relaxed_example() -> None:
    """RFC 6376 §3.4.5."""
    message = b"A: X\r\nB : Y\t\r\n\tZ  \r\n\r\n C \r\nD \t E\r\n\r\n\r\n"
    fields, body = split_message(message)
    assert [relaxed_header(n, v) for n, v in fields] == [b"a:X\r\n", b"b:Y Z\r\n"]
    assert relaxed_body(body) == b" C\r\nD E\r\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"", b""),
        (b"\r\n", b""),
        (b"\r\n\r\n \t \r\n", b""),
        (b"abc", b"abc\r\n"),
        (b"a  b\t\tc \r\n", b"a b c\r\n"),
        (b"a\n\nb\n", b"a\r\n\r\nb\r\n"),
    ],
)
def test_relaxed_body_cases(body: bytes, expected: bytes) -> None:
    assert relaxed_body(body) == expected


def test_unterminated_last_line_signs_as_sent() -> None:
    """SMTP always ends DATA with CRLF, so an unterminated body reaches the receiver with one
    added; canonicalizing it the same way keeps the signature valid after that (dkimpy, fed
    the unterminated form directly, keeps trailing spaces on it: it never sees that form)."""
    for body in [b" ", b"a \t", b"x\r\ny  ", b"\r\n \t"]:
        assert relaxed_body(body) == relaxed_body(body + b"\r\n")


def test_relaxed_header_cases() -> None:
    assert relaxed_header(b"SUBJECT ", b"  a \r\n\t b\t ") == b"subject:a b\r\n"
    assert relaxed_header(b"X", b"") == b"x:\r\n"


def test_split_message_edges() -> None:
    assert split_message(b"\r\nbody") == ([], b"body")
    assert split_message(b"A: 1\r\nB: 2") == ([(b"A", b" 1"), (b"B", b" 2")], b"")
    fields, body = split_message(b"A: 1\n  more\nB:2\n\nx\n")
    assert fields == [(b"A", b" 1\r\n  more"), (b"B", b"2")] and body == b"x\n"


def test_repeated_names_are_selected_bottom_up() -> None:
    fields, _ = split_message(b"To: 1\r\nTo: 2\r\nFrom: f\r\n\r\n")
    assert select_headers(fields, ["to", "to", "to", "From", "From"]) == [
        (b"To", b" 2"),
        (b"To", b" 1"),
        (b"From", b" f"),
    ]


def test_rfc8463_example_body_hash_and_signature() -> None:
    """Our canonicalization reproduces RFC 8463's published Ed25519 signature bit for bit."""
    fields, body = split_message(RFC8463_MESSAGE)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
    assert body_hash == b"2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
    names = ["from", "to", "subject", "date", "message-id", "from", "subject", "date"]
    sig_fields, _ = split_message(RFC8463_SIGNATURE + b"\r\n")
    name, value = sig_fields[0]
    unsigned = re.sub(rb"b=[^;]*$", b"b=", value)
    data = b"".join(relaxed_header(n, v) for n, v in select_headers(fields, names))
    data += relaxed_header(name, unsigned)[:-2]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8463_SEED)
    expected = base64.b64decode(b"".join(tags(RFC8463_SIGNATURE)["b"].encode().split()))
    assert key.sign(hashlib.sha256(data).digest()) == expected


def test_dkimpy_accepts_the_rfc8463_example() -> None:
    txt = f"v=DKIM1; k=ed25519; p={RFC8463_PUBLIC}"
    assert dkim.verify(RFC8463_SIGNATURE + RFC8463_MESSAGE, dnsfunc=lambda *_a, **_k: txt.encode())


# --- signing --------------------------------------------------------------------------------
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("kind", list(MESSAGES))
def test_signatures_verify_with_dkimpy(algorithm: str, kind: str) -> None:
    header, ok = sign_and_verify(MESSAGES[kind], algorithm)
    assert ok, header.decode()
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert header.endswith(b"\r\n") and not header.endswith(b"\r\n\r\n")


def test_rfc8463_key_signs_what_dkimpy_verifies() -> None:
    pem = ed25519.Ed25519PrivateKey.from_private_bytes(RFC8463_SEED).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = DkimSigner("football.example.com", "brisbane", pem, "ed25519-sha256")
    assert signer.dns_txt_value == f"v=DKIM1; k=ed25519; p={RFC8463_PUBLIC}"
    header = signer.sign(RFC8463_MESSAGE, timestamp=1528637909)
    assert tags(header)["bh"] == "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
    txt = signer.dns_txt_value.encode()
    assert dkim.verify(header + RFC8463_MESSAGE, dnsfunc=lambda *_a, **_k: txt)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_tampering_breaks_the_signature(algorithm: str) -> None:
    message = MESSAGES["plain"]
    pem, txt = KEYS[algorithm]
    header = DkimSigner("example.com", "sel", pem, algorithm).sign(message)  # type: ignore[arg-type]
    dns = dnsfunc_for(txt)
    assert dkim.verify(header + message, dnsfunc=dns)
    assert not dkim.verify(header + message.replace(b"Bye.", b"Buy."), dnsfunc=dns)
    assert not dkim.verify(
        header + message.replace(b"Subject: Hello", b"Subject: Hullo"), dnsfunc=dns
    )
    forged_from = b"From: Evil <evil@example.net>\r\n" + message
    assert not dkim.verify(header + forged_from, dnsfunc=dns)  # From is oversigned
    assert dkim.verify(header + b"X-Added: by a relay\r\n" + message, dnsfunc=dns)
    refolded = message.replace(b"Subject: Hello", b"Subject:   Hello\r\n ")
    assert dkim.verify(header + refolded, dnsfunc=dns)  # relaxed tolerates whitespace


def test_signed_header_list() -> None:
    pem, _ = KEYS["ed25519-sha256"]
    header = DkimSigner("Example.COM.", "sel", pem, "ed25519-sha256").sign(
        MESSAGES["repeated-headers"], timestamp=1700000000
    )
    t = tags(header)
    assert t["h"].split(":") == [
        "From", "From", "To", "To", "Subject", "Date", "Message-ID", "Reply-To",
        "MIME-Version", "Content-Type", "In-Reply-To",
    ]  # fmt: skip
    assert (t["v"], t["a"], t["c"], t["d"], t["s"], t["t"]) == (
        "1", "ed25519-sha256", "relaxed/relaxed", "example.com", "sel", "1700000000",
    )  # fmt: skip


def test_verification_through_the_dns_stub() -> None:
    pem, txt = KEYS["rsa-sha256"]
    assert len(txt) > 255  # published as several strings
    message = MESSAGES["plain"]
    header = DkimSigner("example.com", "sel", pem).sign(message)
    with DnsStub({"sel._domainkey.example.com": {"TXT": txt}}) as stub:
        assert dkim.verify(header + message, dnsfunc=stub.dnsfunc)
        stub.remove("sel._domainkey.example.com")
        assert not dkim.verify(header + message, dnsfunc=stub.dnsfunc)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.text(alphabet="ab \t", max_size=12), max_size=6),
    st.text(alphabet="xy \t", max_size=20),
)
def test_random_bodies_and_subjects_agree_with_dkimpy(lines: list[str], subject: str) -> None:
    # Bodies end in CRLF, as on the wire (see test_unterminated_last_line_signs_as_sent).
    body = "".join(f"{line}\r\n" for line in lines).encode()
    message = BASE_HEADERS.replace(b"Hello", subject.encode()) + b"\r\n" + body
    _, ok = sign_and_verify(message, "ed25519-sha256")
    assert ok


# --- keys -----------------------------------------------------------------------------------
def test_generated_keys() -> None:
    rsa_pem, rsa_txt = KEYS["rsa-sha256"]
    key = serialization.load_pem_private_key(rsa_pem, None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert rsa_txt.startswith("v=DKIM1; k=rsa; p=MIIBIjAN")
    ed_pem, ed_txt = KEYS["ed25519-sha256"]
    assert isinstance(serialization.load_pem_private_key(ed_pem, None), ed25519.Ed25519PrivateKey)
    assert re.fullmatch(r"v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=", ed_txt)


def test_bad_keys_and_algorithms() -> None:
    with pytest.raises(ValueError, match="does not fit"):
        DkimSigner("example.com", "sel", KEYS["rsa-sha256"][0], "ed25519-sha256")
    with pytest.raises(ValueError, match="unknown"):
        DkimSigner("example.com", "sel", KEYS["rsa-sha256"][0], "rsa-sha1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        generate_key("dsa")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        DkimSigner("example.com", "sel", b"-----BEGIN PRIVATE KEY-----\nnonsense\n")


def test_keys_are_parsed_once_and_signing_is_fast() -> None:
    pem, _ = KEYS["rsa-sha256"]
    DkimSigner("example.com", "sel", pem)
    hits = _load_key.cache_info().hits
    signer = DkimSigner("example.com", "sel", pem)
    assert _load_key.cache_info().hits == hits + 1
    started = time.perf_counter()
    for _ in range(200):
        signer.sign(MESSAGES["plain"])
    assert time.perf_counter() - started < 5  # ~1 ms each on one core
