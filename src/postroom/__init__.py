"""Postroom: a self-hosted SMTP API. Nothing is imported here so `import postroom` stays cheap.

One thing is kept out instead: httpx imports its command-line tool (click, rich, pygments:
6 MB in every process that sends HTTP) whenever click is installed, and Typer installs it.
Postroom never runs that tool; marking it unimportable makes httpx skip it.
"""

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

__version__ = "0.1.0"
