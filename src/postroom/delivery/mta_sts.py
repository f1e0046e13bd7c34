"""MTA-STS (RFC 8461) without I/O: the `_mta-sts` TXT record, the policy file, MX matching.

A recipient domain publishes `v=STSv1; id=...` at `_mta-sts.<domain>` and a policy at
`https://mta-sts.<domain>/.well-known/mta-sts.txt`; `mta_sts_policies` fetches and caches, this
module only reads text. Everything here is a pure function of its input, so the parsers are
table-tested and fuzzed: any input either parses or raises `PolicyError`, never anything else.

Strictness follows the RFC where it protects the recipient and leans lenient where the only
effect of rejecting would be "no policy" (less protection than the domain asked for): blank
lines and trailing whitespace in a policy are ignored, a trailing dot on an `mx` pattern is
dropped. Of repeated fields the first occurrence counts (RFC 8461 §3.2), except `mx`, which
accumulates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "MAX_AGE_LIMIT",
    "MAX_POLICY_BYTES",
    "Mode",
    "Policy",
    "PolicyError",
    "TxtRecord",
    "mx_matches",
    "parse_policy",
    "parse_txt_record",
    "select_txt_record",
]

Mode = Literal["enforce", "testing", "none"]

#: RFC 8461 §3.2: max_age is at most 31557600 seconds (about a year); larger values are capped.
MAX_AGE_LIMIT = 31_557_600
#: RFC 8461 §3.3: senders may refuse policies larger than 64 KiB.
MAX_POLICY_BYTES = 64 * 1024

_VERSION = "v=STSv1"
_SEP = re.compile(r"[ \t]*;[ \t]*")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_EXT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_TXT_VALUE = re.compile(r"[\x21-\x3a\x3c\x3e-\x7e]+")  # no "=", ";", space or controls
_POLICY_VALUE = re.compile(r"[^\x00-\x20\x7f](?:[ \t]*[^\x00-\x20\x7f])*")  # VCHAR / UTF-8
_MAX_AGE = re.compile(r"[0-9]{1,10}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class PolicyError(ValueError):
    """A TXT record or policy that is not valid MTA-STS; the text says what is wrong."""


@dataclass(frozen=True, slots=True)
class TxtRecord:
    """A parsed `_mta-sts` record; `id` changes whenever the domain publishes a new policy."""

    id: str


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed policy. `mx` holds lowercase A-label patterns ("mx.example.com", "*.example.net")."""

    mode: Mode
    mx: tuple[str, ...]
    max_age: int

    def matches(self, host: str) -> bool:
        """Whether MX host `host` is one this policy names (RFC 8461 §4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def parse_txt_record(text: str) -> TxtRecord:
    """One `_mta-sts` TXT string -> TxtRecord (RFC 8461 §3.1); PolicyError when invalid."""
    parts = _SEP.split(text.rstrip(" \t"))
    if parts[0] != _VERSION:
        raise PolicyError("the record does not start with v=STSv1")
    fields = parts[1:]
    if fields and fields[-1] == "":
        fields.pop()  # a trailing separator is allowed
    record_id: str | None = None
    for field in fields:
        name, eq, value = field.partition("=")
        if not eq or not _EXT_NAME.fullmatch(name) or not _TXT_VALUE.fullmatch(value):
            raise PolicyError(f"malformed field {field[:40]!r}")
        if name == "id":
            if not _ID.fullmatch(value):
                raise PolicyError(f"malformed id {value[:40]!r}")
            record_id = record_id or value  # the first occurrence counts
    if record_id is None:
        raise PolicyError("the record has no id")
    return TxtRecord(record_id)


def select_txt_record(texts: list[str]) -> TxtRecord | None:
    """The domain's record among all TXT strings at `_mta-sts.<domain>`: None when none looks
    like MTA-STS; PolicyError when several do or the one that does is invalid (§3.1: then the
    domain has no available policy, though a cached one still applies)."""
    candidates = [t for t in texts if t.startswith(_VERSION)
                  and (len(t) == len(_VERSION) or t[len(_VERSION)] in " \t;")]
    if not candidates:
        return None
    if len(candidates) > 1:
        raise PolicyError(f"{len(candidates)} MTA-STS TXT records")
    return parse_txt_record(candidates[0])


def parse_policy(body: bytes | str) -> Policy:
    """The policy file's text -> Policy (RFC 8461 §3.2); PolicyError when invalid."""
    if isinstance(body, bytes):
        if len(body) > MAX_POLICY_BYTES:
            raise PolicyError("the policy is larger than 64 KiB")
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise PolicyError("the policy is not UTF-8 text") from None
    seen: dict[str, str] = {}
    mx: list[str] = []
    for line in re.split(r"\r?\n", body):
        line = line.rstrip(" \t")
        if not line:
            continue
        name, colon, value = line.partition(":")
        value = value.lstrip(" \t")
        if not colon or not _EXT_NAME.fullmatch(name) or not _POLICY_VALUE.fullmatch(value):
            raise PolicyError(f"malformed line {line[:60]!r}")
        if name == "mx":
            mx.append(_mx_pattern(value))
        else:
            seen.setdefault(name, value)
    if seen.get("version") != "STSv1":
        raise PolicyError("the policy has no version: STSv1")
    mode = seen.get("mode")
    if mode not in ("enforce", "testing", "none"):
        raise PolicyError(f"unknown mode {mode!r}" if mode else "the policy has no mode")
    max_age = seen.get("max_age")
    if max_age is None or not _MAX_AGE.fullmatch(max_age):
        raise PolicyError("the policy has no valid max_age")
    if not mx and mode != "none":
        raise PolicyError("the policy names no mx")
    return Policy(mode, tuple(mx), min(int(max_age), MAX_AGE_LIMIT))


def mx_matches(pattern: str, host: str) -> bool:
    """`mx.example.com` matches only itself; `*.example.com` matches exactly one more label
    (`a.example.com`, not `example.com` nor `a.b.example.com`). Case and a trailing dot are
    ignored; both sides are compared in A-label form."""
    host = host.rstrip(".").lower()
    if pattern.startswith("*."):
        first, dot, rest = host.partition(".")
        return bool(first) and bool(dot) and rest == pattern[2:]
    return host == pattern


def _mx_pattern(value: str) -> str:
    """An `mx` value as a lowercase pattern; PolicyError unless it is ["*."] A-label domain."""
    pattern = value.lower().removesuffix(".")
    labels = pattern.removeprefix("*.").split(".")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise PolicyError(f"malformed mx pattern {value[:60]!r}")
    return pattern
