"""An installed Postroom (a wheel) carries every template the dashboard loads."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_data_covers_every_template() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["postroom"]
    package = ROOT / "src" / "postroom"
    templates = [p.relative_to(package).as_posix()
                 for p in (package / "web" / "templates").iterdir() if p.is_file()]
    assert "web/templates/base.html" in templates and "web/templates/style.css" in templates
    missing = [t for t in templates if not any(fnmatch.fnmatch(t, g) for g in globs)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"
