"""The `postroom` command (Typer). Every command takes `--config PATH` (or $POSTROOM_CONFIG).

Commands print human text by default and JSON with `--json`; errors go to stderr with exit code 2
(bad arguments) or 1 (the operation failed), never a traceback. One module per command group.
"""

from __future__ import annotations

from postroom.cli import accounts, domains, files, messages, webhooks  # noqa: F401 (registers)
from postroom.cli.common import app

__all__ = ["app", "main"]


def main() -> None:
    app()
