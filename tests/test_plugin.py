"""The plugin registry."""

from __future__ import annotations

import pytest

import syncagents
from syncagents.plugin import Plugin


@pytest.fixture(autouse=True)
def _isolated_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Plugin, "registered_plugins", [])


class Downloader(Plugin):
    def __init__(self, title: str = "demo") -> None:
        super().__init__(title=title, version="1.2.3", package="demo_pkg")
        self.downloads = 0

    def download_files(self) -> None:
        self.downloads += 1


def test_register_and_list() -> None:
    assert syncagents.Plugin is Plugin
    p = Downloader()
    Plugin.register_plugin(p)
    assert Plugin.registered_plugins == [p]
    assert (p.title, p.version, p.package) == ("demo", "1.2.3", "demo_pkg")
    for plugin in Plugin.registered_plugins:
        plugin.download_files()
    assert p.downloads == 1
    assert "demo_pkg" in repr(p)


def test_double_registration_is_ignored() -> None:
    first = Downloader()
    Plugin.register_plugin(first)
    Plugin.register_plugin(first)
    Plugin.register_plugin(Downloader())  # same package and title, e.g. a re-imported module
    assert Plugin.registered_plugins == [first]
    other = Downloader(title="other")
    Plugin.register_plugin(other)
    assert Plugin.registered_plugins == [first, other]


def test_default_download_is_a_no_op_and_type_checked() -> None:
    plain = Plugin("plain", "0.1", "plain_pkg")
    plain.download_files()  # nothing to fetch, must not fail
    with pytest.raises(TypeError):
        Plugin.register_plugin("not a plugin")  # type: ignore[arg-type]
