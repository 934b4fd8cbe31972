"""README's offline testing examples run as written (the LiveKitServer one runs in
tests/integration/test_readme.py)."""

from __future__ import annotations

import os
import re
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "marker",
    ["from syncagents.testing import converse", "from syncagents.testing import DispatchServer"],
)
def test_readme_testing_example_runs(marker: str) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    code = next(b for b in blocks if marker in b)
    sys.path.insert(0, str(ROOT / "examples"))
    cwd = os.getcwd()
    os.chdir(ROOT)  # the example names examples/hello.wav relative to the checkout
    try:
        module = types.ModuleType("readme_converse")
        exec(compile(code, "README.md:converse", "exec"), module.__dict__)
        tests = [v for k, v in vars(module).items() if k.startswith("test_")]
        assert tests
        for test in tests:
            test()
    finally:
        os.chdir(cwd)
        sys.path.remove(str(ROOT / "examples"))
