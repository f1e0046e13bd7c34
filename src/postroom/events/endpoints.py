"""Checks shared by the API and the CLI before a webhook is stored."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from postroom.dialects.values import http_url_problem
from postroom.events.egress import is_public
from postroom.model.records import EventType
from postroom.store.webhook_rows import CREDENTIALS, carries_credentials

MAX_BATCH = 1000


def url_problem(url: str, *, allow_private: bool = False) -> str | None:
    """Why `url` cannot be a webhook (None when it can): what any URL Postroom POSTs to must
    be (`http_url_problem`: http(s), a valid host and port, short enough to store), no
    credentials, and unless `allow_private` ([webhooks] allow_private_targets) not an
    obviously internal host (a non-public IP literal, localhost). Names are checked again,
    resolved, at every POST (egress.py); this only says so early."""
    problem = http_url_problem(url)
    if problem:
        return problem
    if carries_credentials(url):
        return CREDENTIALS
    parts = urlsplit(url)
    if not allow_private and _internal(parts.hostname or ""):
        return ("the URL points at a non-public address ([webhooks] allow_private_targets "
                "allows it)")
    return None


def _internal(host: str) -> bool:
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not is_public(host)
    except ValueError:  # a name: resolved and checked when a POST connects
        return False


def unknown_types(types: Sequence[str]) -> list[str]:
    known = {t.value for t in EventType}
    return [t for t in types if t not in known]
