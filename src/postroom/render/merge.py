"""Merge variables into templates with Jinja2's sandbox: no code execution, escaped HTML.

A template declares what a missing variable means: "error" (the send is refused with
INVALID_DATA naming the variable) or "empty" (it renders as an empty string).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment


class MergeError(ValueError):
    """The template is invalid or needs a variable that was not given."""


@lru_cache(maxsize=4)
def _env(html: bool, strict: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        autoescape=html, undefined=StrictUndefined if strict else Undefined,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=512)
def _compile(source: str, html: bool, strict: bool) -> Any:
    return _env(html, strict).from_string(source)


def render(source: str, variables: dict[str, Any], *, html: bool, missing: str = "error") -> str:
    if "{{" not in source and "{%" not in source:
        return source
    try:
        return str(_compile(source, html, missing == "error").render(**variables))
    except TemplateError as exc:
        raise MergeError(str(exc.message or exc)) from None
