"""The plugin registry: what ``syncagents download-files`` and ``syncagents plugins`` walk.

A plugin package registers one ``Plugin`` when it is imported, e.g.::

    class EspeakPlugin(Plugin):
        def __init__(self) -> None:
            super().__init__(title="espeak", version=__version__, package=__package__)

    Plugin.register_plugin(EspeakPlugin())
"""

from __future__ import annotations

from typing import ClassVar

from loguru import logger

__all__ = ["Plugin"]


class Plugin:
    """Base class of plugins; ``download_files()`` fetches what the plugin needs offline."""

    registered_plugins: ClassVar[list[Plugin]] = []

    def __init__(self, title: str, version: str, package: str) -> None:
        self._title = title
        self._version = version
        self._package = package

    @property
    def title(self) -> str:
        return self._title

    @property
    def version(self) -> str:
        return self._version

    @property
    def package(self) -> str:
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
