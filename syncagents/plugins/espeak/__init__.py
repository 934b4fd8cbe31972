"""Offline text-to-speech with espeak-ng (``pip install 'syncagents[espeak]'``).

The library and its voice data ship inside the ``espeakng-loader`` wheel: no OS package and
nothing to download.
"""

from __future__ import annotations

from ...plugin import Plugin, require_extra
from ...version import __version__

# the engine is imported lazily: check it now, for one clear line instead of a bare
# ModuleNotFoundError at first use
require_extra(__name__, "espeak", "espeakng_loader")

from ._engine import EspeakError  # noqa: E402
from .tts import TTS  # noqa: E402

__all__ = ["TTS", "EspeakError"]


class EspeakPlugin(Plugin):
    """The registry entry of the espeak-ng TTS plugin (engine: ``espeakng-loader``)."""

    def __init__(self) -> None:
        super().__init__(
            title="espeak",
            version=__version__,
            package=__package__ or __name__,
            engines=["espeakng-loader"],
        )

    def download_files(self) -> None:
        """Nothing to download: check that the library and its data load."""
        from ._engine import engine

        engine.prepare("en-us")


Plugin.register_plugin(EspeakPlugin())
