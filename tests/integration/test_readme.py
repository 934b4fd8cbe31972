"""README's whole-agent example against LiveKitServer runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

ROOT = Path(__file__).parent.parent.parent


def test_readme_livekit_server_example_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    code = next(b for b in blocks if b.startswith("# test_agent_on_livekit.py"))
    sys.path.insert(0, str(ROOT / "examples"))  # the example imports echo_agent from there
    try:
        module = types.ModuleType("test_agent_on_livekit")
        exec(compile(code, "README.md:test_agent_on_livekit.py", "exec"), module.__dict__)
        tests = [v for k, v in vars(module).items() if k.startswith("test_")]
        assert tests
        for test in tests:
            test()
    finally:
        sys.path.remove(str(ROOT / "examples"))
