"""Dependencies point downstream only (STYLE.md's import layers), checked on the source's AST.

A module may import from its own package and from any lower layer; never from a higher layer or
from a sibling package in its own layer. The SMTP protocol core imports only the standard library.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "postroom"

# Lowest first. Names are package paths under postroom (longest prefix wins).
LAYERS: list[set[str]] = [
    {"model", "config"},
    {"smtp.grammar", "smtp.commands", "smtp.replies", "smtp.errors", "smtp.server_protocol",
     "smtp.server_events", "smtp.server_commands", "smtp.server_sasl", "smtp.server_data",
     "smtp.client_protocol", "smtp.client_message", "smtp.client_transaction"},
    {"store", "render", "dialects", "smtp.server", "smtp.client", "smtp.tls", "smtp"},
    {"submission", "delivery", "events", "tracking"},
    {"inbound"},
    {"admin"},
    {"api", "web"},
    {"runtime"},
    {"cli"},
    {"__main__"},
]
PURE_SMTP = LAYERS[1]


def unit_of(module: str) -> str:
    """postroom.smtp.server_protocol → 'smtp.server_protocol'; postroom.store.api → 'store'."""
    rel = module.removeprefix("postroom.").removeprefix("postroom")
    best = ""
    for layer in LAYERS:
        for name in layer:
            if (rel == name or rel.startswith(name + ".")) and len(name) > len(best):
                best = name
    return best or rel.split(".")[0]


def layer_of(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"{unit} is in no layer: add it to LAYERS")


def imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from postroom.smtp import replies` names a module
                sub = SRC.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
                is_module = sub.with_suffix(".py").exists() or sub.is_dir()
                found.append(f"{node.module}.{alias.name}" if is_module else node.module)
    return found


def modules() -> list[tuple[str, Path]]:
    out = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append((".".join(parts), path))
    return out


def test_imports_point_downstream() -> None:
    problems = []
    for module, path in modules():
        if "migrations" in module or module == "postroom":
            continue
        unit = unit_of(module)
        mine = layer_of(unit)
        for imported in imports(path):
            if not imported.startswith("postroom"):
                if unit in PURE_SMTP and imported.split(".")[0] not in sys.stdlib_module_names:
                    problems.append(f"{module} (pure SMTP core) imports {imported}")
                continue
            other = unit_of(imported)
            if other == unit or imported == "postroom":
                continue
            theirs = layer_of(other)
            if theirs > mine:
                problems.append(f"{module} imports {imported} (a higher layer)")
            elif theirs == mine and other.split(".")[0] != unit.split(".")[0]:
                problems.append(f"{module} imports its sibling {imported}")
            elif unit in PURE_SMTP and other not in PURE_SMTP:
                problems.append(f"{module} (pure SMTP core) imports {imported}")
    assert not problems, "\n".join(problems)


def test_only_the_store_imports_sqlalchemy() -> None:
    offenders = [
        m for m, p in modules()
        if not m.startswith("postroom.store")
        and any(i.split(".")[0] in ("sqlalchemy", "alembic") for i in imports(p))
    ]
    assert not offenders, offenders
