"""What one render of a merge template may grow to and how much work it may do.

Nested loops that write nothing (`{% for a in range(100000) %}{% for b in range(100000) %}…`)
never reach the output cap, so every render has a budget of work (`MAX_STEPS`): each item a
loop takes, and each call, filter, test, comparison and slice, costs a step plus the size of the
containers (and 1/64 of the strings) it is handed: `big|sum` or `x in big` inside a loop pays
for `big` each time. A render that spends it fails with a `MergeError`, as every bound does.

Calls, filters and tests are metered where the sandbox lets us in (`sandbox.Bounded`); loop
items, comparisons, slices and `~` joins are compiled straight to Python, so `Metered` rewrites
the parsed template to pass them through the filters below.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.visitor import NodeTransformer

#: The most characters a rendered template, or any one value inside it, may have.
MAX_LENGTH = 20 << 20
#: The largest integer power a template may compute, in bits (about 3,000 decimal digits).
MAX_POWER_BITS = 10_000
#: The widest field a `%` format, `str.format` or a padding filter may ask for.
MAX_WIDTH = 10_000
#: The work one render may do, in steps. A step is about one loop item's time (0.1-0.3 µs), or
#: one element of a container, or 64 characters, handed to an operation. A loop over 1,000 items
#: with a few filters and tests in its body takes ~50,000; spending it all takes ~0.3 s.
MAX_STEPS = 1_000_000
#: What a macro call costs, in steps (measured: about as much as 50 loop items).
MACRO_STEPS = 50

STEP, CHARGE, SIZED = "_postroom_step", "_postroom_charge", "_postroom_sized"
_BUDGET: ContextVar[list[int] | None] = ContextVar("postroom_merge_budget", default=None)
_CONTAINERS = (list, tuple, dict, set, frozenset, range, type({}.keys()), type({}.values()),
               type({}.items()))


class MergeError(ValueError):
    """The template is invalid or needs a variable that was not given."""


class TooCostly(MergeError):
    """The template ran out of its work budget or built something too large: a template no
    ordinary mail needs, whose every render would cost the same again."""


def too_big(what: str) -> MergeError:
    return TooCostly(f"{what} would be too large")


def start_budget() -> Token[list[int] | None]:
    """A fresh budget for the render about to run in this context (a token for `end_budget`)."""
    return _BUDGET.set([MAX_STEPS])


def end_budget(token: Token[list[int] | None]) -> None:
    _BUDGET.reset(token)


def weight(value: Any) -> int:
    """What handing `value` to an operation costs, in steps, beyond the step itself."""
    if isinstance(value, str):
        return len(value) >> 6  # a step per 64 characters: about a loop item's time
    return len(value) if isinstance(value, _CONTAINERS) else 0


def spend(steps: int) -> None:
    budget = _BUDGET.get()
    if budget is not None:  # None: compile-time constant folding, bounded by the source
        budget[0] -= steps
        if budget[0] < 0:
            raise TooCostly(f"the template does too much work (more than {MAX_STEPS:,} steps)")


def charged(func: Any, factor: int = 1) -> Any:
    """A filter, test or operator that pays for what it is handed (`factor` times over when it
    runs Python code for each element, as `sort` does with its key)."""

    def paying(*args: Any, **kwargs: Any) -> Any:
        spend(1 + factor * (sum(map(weight, args)) + sum(map(weight, kwargs.values()))))
        return func(*args, **kwargs)

    if hasattr(func, "jinja_pass_arg"):  # @pass_environment and the like: keep telling Jinja
        paying.jinja_pass_arg = func.jinja_pass_arg  # type: ignore[attr-defined]
    return paying


# The filters `Metered` inserts. @pass_context keeps Jinja from running them at compile time
# (constant folding), which would drop them from the compiled template.
@pass_context
def step(context: Any, value: Any) -> Any:
    spend(1)
    return value


@pass_context
def charge(context: Any, value: Any) -> Any:
    spend(1 + weight(value))
    return value


@pass_context
def sized(context: Any, value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_LENGTH:
        raise too_big("a joined value")
    spend(1 + weight(value))
    return value


FILTERS = {STEP: step, CHARGE: charge, SIZED: sized}


class Metered(NodeTransformer):
    """Makes every loop item pay a step (in the loop's `if` when it has one, else in its body:
    one of the two runs for each item, at any depth of a recursive loop), and comparisons,
    slices and `~` joins pay for their operands."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        if node.test is not None:
            node.test = _filter(STEP, node.test)
        else:
            node.body.insert(0, nodes.ExprStmt(_filter(STEP, nodes.Const(None)),
                                               lineno=node.lineno))
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _charging(node.expr)
        for operand in node.ops:
            operand.expr = _charging(operand.expr)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:
        self.generic_visit(node)
        if isinstance(node.arg, nodes.Slice):  # compiled to `x[a:b]`, past `getitem`
            node.node = _charging(node.node)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return _filter(SIZED, node)


def _filter(name: str, value: nodes.Expr) -> nodes.Filter:
    return nodes.Filter(value, name, [], [], None, None, lineno=value.lineno)


def _charging(value: nodes.Expr) -> nodes.Expr:
    """A constant is part of the source, which is bounded: it pays nothing."""
    return value if isinstance(value, nodes.Const) else _filter(CHARGE, value)
