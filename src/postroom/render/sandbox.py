"""The Jinja2 sandbox that merge templates run in, with their growth and their work bounded.

The sandbox stops attribute tricks, not resource exhaustion: `{{ 7 ** 30000000 }}` held the
HTTP server's event loop for 24 s, `{{ "x" * 10**9 }}` built a gigabyte, `lipsum(n=200000)`
took 30 s. So the operators, filters and methods that can grow a value far beyond the
template's own size are bounded here (`bounds` has the limits), and calls, filters and tests
pay into the render's work budget (`bounds.spend`).
"""

from __future__ import annotations

import re
from string import Formatter
from typing import Any

from jinja2 import filters, nodes, pass_eval_context
from jinja2.runtime import Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum

from postroom.render import bounds
from postroom.render.bounds import (
    MACRO_STEPS,
    MAX_LENGTH,
    MAX_POWER_BITS,
    MAX_WIDTH,
    charged,
    spend,
    too_big,
    weight,
)

_WIDTHS = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
# Filters that take the same time whatever they are handed pay no more than the step of their
# expression; the others pay for their input.
_CHEAP_FILTERS = frozenset({"length", "count", "first", "default", "d", "safe", "int", "float",
                            "abs", "round", "bool"})
_CHEAP_METHODS = frozenset({"get", "keys", "values", "items"})  # O(1) on a dict
# Filters that run Python code per element or character (measured against a loop item).
_SLOW_FILTERS = {"sort": 8, "dictsort": 4, "groupby": 8, "unique": 4, "join": 2, "urlize": 8,
                 "tojson": 4, "pprint": 4, "xmlattr": 4}


def _check_format(spec: Any) -> None:
    if isinstance(spec, str):
        for width, precision in _WIDTHS.findall(spec):
            if "*" in (width, precision) or int(width or 0) > MAX_WIDTH \
                    or int(precision or 0) > MAX_WIDTH:
                raise too_big("a formatted field")


def _check_braces(template: str) -> None:
    """`str.format` fields: widths as `%` ones; a width taken from an argument is refused."""
    for _, field, spec, _ in Formatter().parse(template):
        if field is not None and spec and ("{" in spec or any(
                int(n) > MAX_WIDTH for n in re.findall(r"\d+", spec))):
            raise too_big("a formatted field")


def _power(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right > 0 \
            and abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
        raise too_big("a power")
    return left**right


def _times(left: Any, right: Any) -> Any:
    for seq, n in ((left, right), (right, left)):
        if isinstance(seq, str | list | tuple) and isinstance(n, int):
            if len(seq) * n > MAX_LENGTH:
                raise too_big("a repeated value")
            spend(weight(seq) * max(n, 0))
    return left * right


def _plus(left: Any, right: Any) -> Any:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        if len(left) + len(right) > MAX_LENGTH:
            raise too_big("a joined value")
        spend(weight(left) + weight(right))
    return left + right


def _modulo(left: Any, right: Any) -> Any:
    _check_format(left)
    spend(weight(right))
    out = left % right
    spend(weight(out))
    return out


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
        raise too_big("a replacement")
    return filters.do_replace(eval_ctx, s, old, new, count)


def _widened(name: str) -> Any:
    """A padding filter (center, indent, wordwrap, truncate) with its width bounded."""
    original = filters.FILTERS[name]
    passed = hasattr(original, "jinja_pass_arg")  # @pass_environment: (env, value, ...)
    skip = 2 if passed else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        for value in (*args[skip:], *kwargs.values()):
            if isinstance(value, int) and not isinstance(value, bool) and value > MAX_WIDTH:
                raise too_big(f"the {name} width")
        return original(*args, **kwargs)

    if passed:
        bounded.jinja_pass_arg = original.jinja_pass_arg  # type: ignore[attr-defined]
    return bounded


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    """Jinja's `lipsum`, paid for before it runs: a word costs about what a loop item does."""
    spend(abs(int(n)) * abs(int(max)))
    return generate_lorem_ipsum(n, html, min, max)


class Bounded(ImmutableSandboxedEnvironment):
    """The sandbox, immutable (a template cannot change the variables other recipients are
    rendered with: `seen.append(x)` is refused), with growth and work bounded."""

    intercepted_binops = frozenset({"**", "*", "%", "+"})
    _BINOPS = {"**": _power, "*": _times, "%": _modulo, "+": _plus}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters["format"] = _format
        self.filters["replace"] = _replace
        for name in ("center", "indent", "wordwrap", "truncate"):
            self.filters[name] = _widened(name)
        for name, func in list(self.filters.items()):
            if name not in _CHEAP_FILTERS:
                self.filters[name] = charged(func, _SLOW_FILTERS.get(name, 1))
        self.tests = {name: charged(func) for name, func in self.tests.items()}
        self.filters.update(bounds.FILTERS)
        self.globals["lipsum"] = _lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = bounds.Metered().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree  # type: ignore[no-any-return]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        return self._BINOPS[operator](left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Every call pays for its arguments, a method for its object too (not a dict's
        lookups), a macro for its body's overhead."""
        cost = 1 + sum(map(weight, args)) + sum(map(weight, kwargs.values()))
        receiver = getattr(__obj, "__self__", None)
        if receiver is not None and getattr(__obj, "__name__", "") not in _CHEAP_METHODS:
            cost += weight(receiver)
        elif isinstance(__obj, Macro):
            cost += MACRO_STEPS
        spend(cost)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_braces(value.__self__)
        return wrapped
