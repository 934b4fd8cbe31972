"""Offline speech recognition with CMU pocketsphinx (``pip install 'syncagents[pocketsphinx]'``).

The US English acoustic model, language model and dictionary ship inside the pocketsphinx
wheel: nothing is downloaded.
"""

from __future__ import annotations

from ...plugin import Plugin, require_extra
from ...version import __version__

# the engine is imported lazily: check it now, for one clear line instead of a bare
# ModuleNotFoundError at first use
require_extra(__name__, "pocketsphinx", "pocketsphinx")

from ._decoder import missing_model_files, model_files  # noqa: E402
from .stt import STT  # noqa: E402

__all__ = ["STT", "model_files"]


class PocketsphinxPlugin(Plugin):
    """The registry entry of the PocketSphinx STT plugin (engine: ``pocketsphinx``)."""

    def __init__(self) -> None:
        super().__init__(
            title="pocketsphinx",
            version=__version__,
            package=__package__ or __name__,
            engines=["pocketsphinx"],
        )

    def download_files(self) -> None:
        """Nothing to download: check that the wheel's model files are present."""
        missing = missing_model_files()
        if missing:
            raise RuntimeError(
                "pocketsphinx model files are missing (reinstall pocketsphinx): "
                + ", ".join(missing)
            )


Plugin.register_plugin(PocketsphinxPlugin())
