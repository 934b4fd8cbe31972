"""The package's layout rules that a reviewer would otherwise have to check by eye."""

from __future__ import annotations

import ast
from pathlib import Path

import syncagents

PACKAGE = Path(syncagents.__file__).parent

# livekit's SDKs are asyncio: the bridge runs their loop, and only the facades over them
# (rtc: livekit.rtc; api: livekit.api) write coroutines for it. Everything else is blocking.
ASYNCIO_ALLOWED = ("_bridge.py", "rtc/", "api/")


def _asyncio_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith, ast.Await)):
            found.append(f"line {node.lineno}: {type(node).__name__}")
        elif isinstance(node, ast.Import) and any(a.name == "asyncio" for a in node.names):
            found.append(f"line {node.lineno}: import asyncio")
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            found.append(f"line {node.lineno}: from asyncio import")
    return found


def test_only_the_bridge_and_livekit_facades_write_asyncio() -> None:
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(ASYNCIO_ALLOWED):
            continue
        uses = _asyncio_uses(ast.parse(path.read_text(), rel))
        if uses:
            offenders[rel] = uses
    assert offenders == {}


def test_the_layout_check_sees_asyncio() -> None:
    # the rule above must be able to fail
    sample = "import asyncio\nasync def f():\n    await g()\n"
    assert len(_asyncio_uses(ast.parse(sample))) == 3
