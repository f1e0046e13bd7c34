"""Merge variables into templates with Jinja2's sandbox: no code execution, escaped HTML.

A template declares what a missing variable means: "error" (the send is refused with
INVALID_DATA naming the variable) or "empty" (it renders as an empty string).

The sandbox (`render.sandbox`, with the limits in `render.bounds`) bounds what a template may
grow to and how much work one render may do; the output is capped while it is produced. Any failure while rendering (a division by zero, a
range too large, a filter given the wrong type, a bound reached) is the template's error, not
ours: a MergeError, which the API answers with INVALID_DATA.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from postroom.render.bounds import (
    MAX_LENGTH,
    MAX_POWER_BITS,
    MAX_STEPS,
    MAX_WIDTH,
    MergeError,
    TooCostly,
    end_budget,
    start_budget,
    too_big,
)
from postroom.render.sandbox import Bounded

__all__ = ["MAX_LENGTH", "MAX_POWER_BITS", "MAX_STEPS", "MAX_WIDTH", "MergeError", "TooCostly",
           "render"]


@lru_cache(maxsize=4)
def _env(html: bool, strict: bool) -> SandboxedEnvironment:
    return Bounded(
        # "empty": `{{ acct.plan }}` without `acct` is empty too (Undefined raised, and the
        # whole part went out unrendered)
        autoescape=html, undefined=StrictUndefined if strict else ChainableUndefined,
        keep_trailing_newline=True,
    )


@lru_cache(maxsize=512)
def _compile(source: str, html: bool, strict: bool) -> Any:
    return _env(html, strict).from_string(source)


def render(source: str, variables: dict[str, Any], *, html: bool, missing: str = "error") -> str:
    if "{{" not in source and "{%" not in source:
        return source
    budget = start_budget()
    try:
        out: list[str] = []
        size = 0
        for chunk in _compile(source, html, missing == "error").generate(**variables):
            size += len(chunk)
            if size > MAX_LENGTH:
                raise too_big("the rendered text")
            out.append(chunk)
        return "".join(out)
    except MergeError:
        raise
    except TemplateError as exc:
        raise MergeError(str(exc.message or exc)) from None
    except (RecursionError, MemoryError):
        raise TooCostly("the template needs too much memory or recursion") from None
    except Exception as exc:  # a template's own runtime error: 1/0, a bad filter argument...
        raise MergeError(f"{type(exc).__name__}: {exc}") from None
    finally:
        end_budget(budget)
