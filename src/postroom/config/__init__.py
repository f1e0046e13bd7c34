"""Configuration: one pydantic-settings tree, read from TOML with POSTROOM_* env overrides."""

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
