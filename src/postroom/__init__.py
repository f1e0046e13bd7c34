"""Postroom: a self-hosted SMTP API. Nothing is imported here so `import postroom` stays cheap."""

__version__ = "0.1.0"
