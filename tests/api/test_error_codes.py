"""Every stable error code is published in docs/API.md with its HTTP status."""

from pathlib import Path

from postroom.api.errors import CODES

DOC = (Path(__file__).resolve().parents[2] / "docs" / "API.md").read_text()


def test_every_code_is_documented() -> None:
    for code, (status, _) in CODES.items():
        assert f"| `{code}` | {status} |" in DOC, code
