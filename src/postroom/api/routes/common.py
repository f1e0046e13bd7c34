"""Shared bits for routes: documented error responses, JSON conversion, time parsing."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from postroom.api.errors import ApiError

_ERR = {"description": "Error envelope: {code, details, message, status: error}"}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _ERR, 401: _ERR, 403: _ERR, 404: _ERR, 409: _ERR, 429: _ERR, 500: _ERR, 503: _ERR,
}


def jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {k: jsonable(v) for k, v in asdict(value).items() if k != "data"}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return None
    return value


def parse_when(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError("INVALID_DATA", f"{name} must be an ISO 8601 time.",
                       {"api_name": name}) from None
    if when.tzinfo is None:
        raise ApiError("INVALID_DATA", f"{name} needs a UTC offset.", {"api_name": name})
    return when
