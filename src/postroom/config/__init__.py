"""Configuration: one pydantic-settings tree, read from TOML with POSTROOM_* env overrides.

The names below are loaded on first use, so that `postroom.config.heap` costs a process (the
writer) no pydantic.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postroom.config.settings import (
        DeliverySettings,
        HttpSettings,
        RouteSettings,
        Settings,
        SmtpSettings,
        StorageSettings,
        load_settings,
    )

__all__ = [
    "DeliverySettings",
    "HttpSettings",
    "RouteSettings",
    "Settings",
    "SmtpSettings",
    "StorageSettings",
    "load_settings",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from postroom.config import settings

        return getattr(settings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
