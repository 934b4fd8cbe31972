"""MkDocs hook: every public module of syncagents is in the API reference.

The pages under ``docs/reference/`` place each module with a ``::: syncagents.xxx`` directive.
A public module that none of them names (a module added since) is appended at build time to
the page of its package, so the reference never silently misses one; the build log names it,
so that it can be placed on its page by hand. Public: no part of the dotted path starts with
``_``. Nothing is imported: the modules are found from the file tree.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.reference")

ROOT = Path(__file__).resolve().parents[2]  # docs/hooks/ -> the repository
PACKAGE = "syncagents"
DIRECTIVE = re.compile(r"^::: *([\w.]+)", re.MULTILINE)

# package (or module) -> the reference page its modules belong on; the longest match wins
PAGES = {
    "syncagents": "reference/core.md",
    "syncagents.runtime": "reference/runtime.md",
    "syncagents.events": "reference/runtime.md",
    "syncagents.channel": "reference/runtime.md",
    "syncagents.log": "reference/runtime.md",
    "syncagents.voice": "reference/voice.md",
    "syncagents.voice_assistant": "reference/voice_assistant.md",
    "syncagents.vad": "reference/vad.md",
    "syncagents.stt": "reference/stt.md",
    "syncagents.tts": "reference/tts.md",
    "syncagents.llm": "reference/llm.md",
    "syncagents.tokenize": "reference/tokenize.md",
    "syncagents.rtc": "reference/rtc.md",
    "syncagents.api": "reference/api.md",
    "syncagents.codecs": "reference/codecs.md",
    "syncagents.utils": "reference/utils.md",
    "syncagents.plugins": "reference/plugins.md",
    "syncagents.testing": "reference/testing.md",
    "syncagents.console": "reference/console.md",
    "syncagents.cli": "reference/cli.md",
}

_missing: dict[str, list[str]] = {}  # page -> modules to append


def public_modules() -> list[str]:
    """Dotted names of the package's public modules and packages, from its files."""
    names = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__" or any(part.startswith("_") for part in parts):
            continue
        names.append(".".join(parts))
    return names


def page_of(module: str) -> str:
    """The page of the longest entry of ``PAGES`` that is ``module`` or a package of it."""
    best = max(
        (name for name in PAGES if module == name or module.startswith(name + ".")), key=len
    )
    return PAGES[best]


def on_config(config: Any) -> Any:
    """Find the public modules no reference page names."""
    docs = Path(config["docs_dir"])
    listed = set()
    for page in (docs / "reference").glob("*.md"):
        listed.update(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    _missing.clear()
    for module in public_modules():
        if module not in listed:
            page = page_of(module)
            _missing.setdefault(page, []).append(module)
            log.info("API reference: %s is on no page; appended to %s", module, page)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Append the directives of the modules that belong on this page."""
    modules = _missing.get(page.file.src_uri, [])
    if not modules:
        return markdown
    return markdown.rstrip() + "\n\n" + "\n\n".join(f"::: {m}" for m in modules) + "\n"
