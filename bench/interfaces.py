"""Throughput of the plugin-interface building blocks.

Sections (each a function returning its figures; ``main()`` runs and prints them all):
- tokenizer: sentence / word tokenizing, batch and streamed in LLM-sized deltas (chars/s);
- mp3: streaming MP3 decode of a generated 60 s stereo 48 kHz file, as a multiple of real
  time (goal >= 200x).
Other sections (e.g. VAD) go in as further ``bench_*`` functions listed in ``SECTIONS``.
No assertions: the numbers are for comparison between runs and machines.

Run: ``python bench/interfaces.py``
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import syncagents  # noqa: F401  (patches gevent first)
from syncagents.codecs import Mp3StreamDecoder, encode_mp3
from syncagents.tokenize import basic
from syncagents.utils.audio import from_float32, split_frames

MP3_GOAL_X_REALTIME = 200.0

_SENTENCES = [
    "Dr. Smith arrived at 9 a.m. and the meeting started right away.",
    "The U.S. Army sent 3.5 tons of supplies, e.g. food and water.",
    "Wait... What happened next?",
    'She said "Stop!" and everyone froze.',
    "Prices rose by 2.5% in the last quarter, which surprised analysts.",
    "Is that all? Yes!",
    "LiveKit is a platform for live audio and video applications and services.",
    "Mr. Jones, Mrs. Brown and St. Mark's choir sang together etc. and so on.",
]


def _text(n_chars: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        s = rng.choice(_SENTENCES)
        parts.append(s)
        size += len(s) + 1
    return " ".join(parts)


def _deltas(text: str, seed: int = 1) -> list[str]:
    """LLM-like streaming deltas of 1-12 characters."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(text):
        n = rng.randint(1, 12)
        out.append(text[i : i + n])
        i += n
    return out


def _best_of(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_tokenizer() -> dict[str, float]:
    text = _text(200_000)
    deltas = _deltas(text)
    figures: dict[str, float] = {}
    for name, tok in (
        ("sentence", basic.SentenceTokenizer()),
        ("word", basic.WordTokenizer()),
    ):

        def batch(tok: basic.SentenceTokenizer | basic.WordTokenizer = tok) -> None:
            tok.tokenize(text)

        def stream(tok: basic.SentenceTokenizer | basic.WordTokenizer = tok) -> None:
            s = tok.stream()
            for d in deltas:
                s.push_text(d)
            s.end_input()
            for _ in s:
                pass

        figures[f"{name}_batch_chars_per_s"] = len(text) / _best_of(batch)
        figures[f"{name}_stream_chars_per_s"] = len(text) / _best_of(stream)
    figures["chars"] = float(len(text))
    figures["deltas"] = float(len(deltas))
    return figures


def bench_mp3(seconds: float = 60.0, chunk_bytes: int = 4096) -> dict[str, float]:
    # two tones plus noise: a pure sine would compress (and decode) unrealistically well
    n = int(seconds * 48000)
    t = np.arange(n) / 48000
    rng = np.random.default_rng(0)
    left = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(n)
    right = 0.3 * np.sin(2 * np.pi * 330 * t) + 0.05 * rng.standard_normal(n)
    source = from_float32(np.stack([left, right], axis=1).astype(np.float32), 48000)
    t0 = time.perf_counter()
    mp3 = encode_mp3(split_frames(source, 20))
    encode_s = time.perf_counter() - t0
    chunks = [mp3[i : i + chunk_bytes] for i in range(0, len(mp3), chunk_bytes)]
    decoded = [0.0]

    def decode() -> None:
        dec = Mp3StreamDecoder()
        total = 0
        for c in chunks:
            total += sum(f.samples_per_channel for f in dec.decode_chunk(c))
        total += sum(f.samples_per_channel for f in dec.flush())
        decoded[0] = total / 48000

    decode_s = _best_of(decode)
    return {
        "audio_s": seconds,
        "mp3_bytes": float(len(mp3)),
        "chunk_bytes": float(chunk_bytes),
        "encode_s": encode_s,
        "decode_s": decode_s,
        "decoded_audio_s": decoded[0],
        "decode_x_realtime": seconds / decode_s,
        "decode_ms_per_chunk": decode_s / len(chunks) * 1000,
    }


def print_tokenizer(f: dict[str, float]) -> None:
    print(f"== tokenizer ({f['chars']:.0f} chars, stream in {f['deltas']:.0f} deltas of 1-12)")
    for name in ("sentence", "word"):
        b, s = f[f"{name}_batch_chars_per_s"], f[f"{name}_stream_chars_per_s"]
        print(
            f"  {name:8s} batch {b / 1e6:7.2f} M chars/s   stream {s / 1e6:7.2f} M chars/s"
            f"   stream/batch {s / b:5.2f}"
        )


def print_mp3(f: dict[str, float]) -> None:
    x = f["decode_x_realtime"]
    print(
        f"== mp3 ({f['audio_s']:.0f} s stereo 48 kHz, {f['mp3_bytes'] / 1e6:.2f} MB, "
        f"{f['chunk_bytes']:.0f}-byte chunks)"
    )
    print(f"  encode {f['encode_s']:.3f} s (test fixture, not timed against a goal)")
    print(
        f"  decode {f['decode_s']:.3f} s for {f['decoded_audio_s']:.2f} s of audio: "
        f"{x:.0f}x real time (goal {MP3_GOAL_X_REALTIME:.0f}x, "
        f"ratio {x / MP3_GOAL_X_REALTIME:.2f}), {f['decode_ms_per_chunk']:.3f} ms per chunk"
    )


# (name, run, print) — add sections here
SECTIONS: list[tuple[str, Callable[[], dict[str, float]], Callable[[dict[str, float]], None]]] = [
    ("tokenizer", bench_tokenizer, print_tokenizer),
    ("mp3", bench_mp3, print_mp3),
]


def main(argv: list[str] | None = None) -> None:
    wanted = set(argv if argv is not None else sys.argv[1:])
    for name, run, show in SECTIONS:
        if wanted and name not in wanted:
            continue
        show(run())


if __name__ == "__main__":
    main()
