"""Persistence: the durable queue, accounts, keys, suppressions and the event log.

This is the only package that imports SQLAlchemy. Other stages use `Store` and the errors
below, and exchange `postroom.model` records with it.
"""

from postroom.store.api import Store
from postroom.store.errors import (
    AlreadyExists,
    InvalidData,
    NotFound,
    StorageFull,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "AlreadyExists",
    "InvalidData",
    "NotFound",
    "StorageFull",
    "Store",
    "StoreError",
    "StoreUnavailable",
]
