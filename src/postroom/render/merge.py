"""Merge variables into templates with Jinja2's sandbox: no code execution, escaped HTML.

A template declares what a missing variable means: "error" (the send is refused with
INVALID_DATA naming the variable) or "empty" (it renders as an empty string).

The sandbox stops attribute tricks, not resource exhaustion: `{{ 7 ** 30000000 }}` held the
HTTP server's event loop for 24 s and `{{ "x" * 10**9 }}` built a gigabyte. So the operators and
filters that can grow a value far beyond the template's own size are bounded here (`_Bounded`),
the output is capped while it is produced, and any failure while rendering (a division by
zero, a range too large, a filter given the wrong type) is the template's error, not ours: a
MergeError, which the API answers with INVALID_DATA.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, filters, pass_eval_context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

#: The most characters a rendered template, or any one value inside it, may have.
MAX_LENGTH = 20 << 20
#: The largest integer power a template may compute, in bits (about 3,000 decimal digits).
MAX_POWER_BITS = 10_000
#: The widest field a `%` format or a padding filter may ask for.
MAX_WIDTH = 10_000

_WIDTHS = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")


class MergeError(ValueError):
    """The template is invalid or needs a variable that was not given."""


def _too_big(what: str) -> MergeError:
    return MergeError(f"{what} would be too large")


def _check_format(spec: Any) -> None:
    if isinstance(spec, str):
        for width, precision in _WIDTHS.findall(spec):
            if "*" in (width, precision) or int(width or 0) > MAX_WIDTH \
                    or int(precision or 0) > MAX_WIDTH:
                raise _too_big("a formatted field")


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
        raise _too_big("a power")
    return left**right


def _times(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int) \
                and len(seq) * n > MAX_LENGTH:
            raise _too_big("a repeated value")
    return left * right


def _modulo(left: Any, right: Any) -> Any:
    _check_format(left)
    return left % right


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    _check_format(str(value))
    return filters.do_format(value, *args, **kwargs)


@pass_eval_context
def _replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
    text, old_s, new_s = str(s), str(old), str(new)
    hits = len(text) + 1 if not old_s else text.count(old_s)
    if count is not None and count >= 0:
        hits = min(hits, count)
    if len(text) + hits * max(0, len(new_s) - len(old_s)) > MAX_LENGTH:
        raise _too_big("a replacement")
    return filters.do_replace(eval_ctx, s, old, new, count)


def _widened(name: str) -> Any:
    """A padding filter (center, indent, wordwrap, truncate) with its width bounded."""
    original = filters.FILTERS[name]
    passed = hasattr(original, "jinja_pass_arg")  # @pass_environment: (env, value, ...)
    skip = 2 if passed else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[skip:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_WIDTH:
                raise _too_big(f"the {name} width")
        return original(*args, **kwargs)

    if passed:
        bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


class _Bounded(ImmutableSandboxedEnvironment):
    """The sandbox, immutable (a template cannot change the variables other recipients are
    rendered with: `seen.append(x)` is refused), with growth bounded."""

    intercepted_binops = frozenset({"**", "*", "%"})
    _BINOPS = {"**": _power, "*": _times, "%": _modulo}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters["format"] = _format
        self.filters["replace"] = _replace
        for name in ("center", "indent", "wordwrap", "truncate"):
            self.filters[name] = _widened(name)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return self._BINOPS[operator](left, right)


@lru_cache(maxsize=4)
def _env(html: bool, strict: bool) -> SandboxedEnvironment:
    return _Bounded(
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
    try:
        out: list[str] = []
        size = 0
        for chunk in _compile(source, html, missing == "error").generate(**variables):
            size += len(chunk)
            if size > MAX_LENGTH:
                raise _too_big("the rendered text")
            out.append(chunk)
        return "".join(out)
    except MergeError:
        raise
    except TemplateError as exc:
        raise MergeError(str(exc.message or exc)) from None
    except (RecursionError, MemoryError):
        raise MergeError("the template needs too much memory or recursion") from None
    except Exception as exc:  # a template's own runtime error: 1/0, a bad filter argument...
        raise MergeError(f"{type(exc).__name__}: {exc}") from None
