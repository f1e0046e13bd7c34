"""Shared bits for routes: documented error responses, JSON conversion, time parsing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from postroom.api.errors import ApiError
from postroom.model.jsonable import jsonable

__all__ = ["ERRORS", "jsonable", "parse_when"]

_ERR = {"description": "Error envelope: {code, details, message, status: error}"}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: _ERR, 401: _ERR, 403: _ERR, 404: _ERR, 409: _ERR, 429: _ERR, 500: _ERR, 503: _ERR,
}


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
