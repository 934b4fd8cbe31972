"""Test set-up: syncagents must be imported (and gevent patched) before anything else."""

import syncagents  # noqa: F401  (patches gevent first)
