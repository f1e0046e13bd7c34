"""One log format for every Postroom process, with the process id: the parent, the ingress
children and the writer, delivery and webhook processes all write to the same stream."""

from __future__ import annotations

import logging
import sys


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s",
    )
