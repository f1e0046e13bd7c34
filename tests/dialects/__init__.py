"""Table tests for the dialects: each test module lists (headers, expected fields) and
(headers, problem) rows and gets its test functions from `table_tests`."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from postroom.dialects import DialectError, SendOptions

Headers = list[tuple[str, str]]


def table_tests(module: ModuleType, valid: list[tuple[Headers, dict[str, Any]]],
                invalid: list[tuple[Headers, str]]) -> tuple[Any, Any]:
    """test_valid, test_invalid for one dialect module.

    Valid rows must parse to exactly the given fields (plus the dialect's name); invalid rows must
    raise a DialectError naming one of the row's headers, whose problem contains the given text.
    """
    name = module.DIALECT.name

    @pytest.mark.parametrize(("headers", "expected"), valid)
    def test_valid(headers: Headers, expected: dict[str, Any]) -> None:
        assert module.parse(headers) == SendOptions(dialects=(name,), **expected)

    @pytest.mark.parametrize(("headers", "problem"), invalid)
    def test_invalid(headers: Headers, problem: str) -> None:
        with pytest.raises(DialectError) as caught:
            module.parse(headers)
        assert caught.value.header in {h for h, _ in headers}
        assert problem in caught.value.problem
        assert str(caught.value) == f"{caught.value.header}: {caught.value.problem}"

    return test_valid, test_invalid
