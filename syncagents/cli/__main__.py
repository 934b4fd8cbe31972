"""``python -m syncagents.cli``: what worker child processes run."""

from . import main

main()
