"""Persistence: the durable queue, accounts, keys, suppressions and the event log.

This is the only package that imports SQLAlchemy. Other stages use `Store` and the errors
below, and exchange `postroom.model` records with it.
"""

from typing import TYPE_CHECKING, Any

from postroom.store.errors import (
    AlreadyExists,
    InvalidData,
    NotFound,
    StorageFull,
    StoreError,
    StoreUnavailable,
)

if TYPE_CHECKING:
    from postroom.store.api import Store


def __getattr__(name: str) -> Any:
    """`Store` is imported on first use, so that a process which needs only a part of the
    store (the writer process: engine, queue rows) does not load all of it."""
    if name == "Store":
        from postroom.store.api import Store

        return Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExists",
    "InvalidData",
    "NotFound",
    "StorageFull",
    "Store",
    "StoreError",
    "StoreUnavailable",
]
