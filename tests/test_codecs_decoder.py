"""codecs.AudioStreamDecoder and codecs.StreamBuffer: real encoded audio (PyAV) pushed in
random chunks, decoded on a native thread while greenlets keep running."""

from __future__ import annotations

import io
import random
import struct
from typing import Any

import av
import gevent
import gevent.event
import numpy as np
import pytest
from loguru import logger

import syncagents
from syncagents import codecs

FREQ = 440.0

# (container, encoder, encoder rate): the formats TTS services and files come in
FORMATS = [
    ("mp3", "libmp3lame", 44100),
    ("adts", "aac", 44100),
    ("ogg", "libopus", 48000),
    ("flac", "flac", 44100),
    ("wav", "pcm_s16le", 16000),
]


def encode(fmt: str, codec: str, rate: int, seconds: float = 1.0, channels: int = 1,
           freq: float = FREQ) -> bytes:
    """A sine tone encoded in memory with PyAV."""
    layout = "stereo" if channels == 2 else "mono"
    t = np.arange(int(rate * seconds)) / rate
    tone = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    planes = np.repeat(tone[None, :], channels, axis=0)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream: Any = container.add_stream(codec, rate=rate, layout=layout)
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def push_in_chunks(decoder: codecs.AudioStreamDecoder, data: bytes, rng: random.Random,
                   max_chunk: int = 2000) -> None:
    i = 0
    while i < len(data):
        n = rng.randint(1, max_chunk)
        decoder.push(data[i : i + n])
        i += n
    decoder.end_input()


def collect(decoder: codecs.AudioStreamDecoder) -> list[Any]:
    frames = []
    while True:
        try:
            frames.append(decoder.next(timeout=20))
        except StopIteration:
            return frames


def samples_of(frames: list[Any]) -> np.ndarray:
    return np.concatenate([np.frombuffer(f.data, np.int16) for f in frames])


def dominant_frequency(mono: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(mono.astype(np.float64) * np.hanning(len(mono))))
    return float(np.argmax(spectrum) * rate / len(mono))


@pytest.mark.parametrize(("fmt", "codec", "rate"), FORMATS)
@pytest.mark.parametrize("seed", [1, 2])
def test_decodes_every_format_pushed_in_random_chunks(
    fmt: str, codec: str, rate: int, seed: int
) -> None:
    data = encode(fmt, codec, rate)
    decoder = codecs.AudioStreamDecoder(sample_rate=24000, num_channels=1)
    push_in_chunks(decoder, data, random.Random(seed))
    frames = collect(decoder)
    assert frames and all(f.sample_rate == 24000 and f.num_channels == 1 for f in frames)
    pcm = samples_of(frames)
    # lossy codecs add a little encoder delay and padding, never lose the tone
    assert 0.98 <= len(pcm) / 24000 <= 1.1
    assert abs(dominant_frequency(pcm, 24000) - FREQ) < 5
    assert np.abs(pcm).max() > 0.3 * 32767


def test_stereo_and_native_rate() -> None:
    data = encode("flac", "flac", 32000, channels=2, freq=1000.0)
    decoder = codecs.AudioStreamDecoder(sample_rate=None, num_channels=None, format="audio/flac")
    push_in_chunks(decoder, data, random.Random(3))
    frames = collect(decoder)
    assert {(f.sample_rate, f.num_channels) for f in frames} == {(32000, 2)}
    stereo = samples_of(frames).reshape(-1, 2)
    assert len(stereo) == 32000
    assert abs(dominant_frequency(stereo[:, 1], 32000) - 1000.0) < 5

    mono = codecs.AudioStreamDecoder(sample_rate=48000, num_channels=1)
    push_in_chunks(mono, data, random.Random(4))
    pcm = samples_of(collect(mono))
    assert abs(len(pcm) - 48000) < 100
    assert abs(dominant_frequency(pcm, 48000) - 1000.0) < 5


def test_speech_from_espeak_survives_mp3() -> None:
    espeak = pytest.importorskip("syncagents.plugins.espeak")
    tts = espeak.TTS()
    frames = [ev.frame for ev in tts.synthesize("Hello from the decoder test.")]
    speech = np.concatenate([np.frombuffer(f.data, np.int16) for f in frames])
    rate = frames[0].sample_rate
    data = codecs.encode_mp3(frames)
    decoder = codecs.AudioStreamDecoder(sample_rate=rate, num_channels=1, format="audio/mpeg")
    push_in_chunks(decoder, data, random.Random(5), max_chunk=700)
    decoded = samples_of(collect(decoder)).astype(np.float64)
    assert abs(len(decoded) - len(speech)) < 0.1 * rate
    # the decoded signal follows the original: strong correlation at the codec's delay
    n = min(len(decoded), len(speech)) - 4096
    corr = [np.corrcoef(speech[:n], decoded[lag : lag + n])[0, 1] for lag in range(0, 4096, 8)]
    assert max(corr) > 0.8


def test_corrupt_data_is_skipped_with_a_warning() -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING", format="{message}")
    data = encode("mp3", "libmp3lame", 44100, seconds=2.0)
    rng = np.random.default_rng(0)
    middle = len(data) // 2
    garbage = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    damaged = data[:middle] + garbage + data[middle + 3000 :]
    decoder = codecs.AudioStreamDecoder(sample_rate=24000)
    push_in_chunks(decoder, damaged, random.Random(6))
    pcm = samples_of(collect(decoder))
    logger.remove(sink)
    assert len(pcm) / 24000 > 1.5  # the rest of the stream still decodes
    assert abs(dominant_frequency(pcm, 24000) - FREQ) < 5
    assert any("corrupt" in w for w in warnings), warnings


def test_input_that_is_no_audio_is_one_clear_error() -> None:
    decoder = codecs.AudioStreamDecoder()
    decoder.push(b"this is plain text, not audio at all " * 200)
    decoder.end_input()
    with pytest.raises(ValueError, match="cannot read the input as audio"):
        decoder.next(timeout=20)
    with pytest.raises(StopIteration):
        decoder.next(timeout=1)


def test_empty_input_ends_at_once_and_bad_use_fails_clearly() -> None:
    decoder = codecs.AudioStreamDecoder()
    decoder.end_input()
    assert list(decoder) == []
    with pytest.raises(RuntimeError, match="after end_input"):
        decoder.push(b"x")
    with pytest.raises(ValueError, match="num_channels"):
        codecs.AudioStreamDecoder(num_channels=3)
    with pytest.raises(ValueError, match="sample_rate"):
        codecs.AudioStreamDecoder(sample_rate=0)
    with pytest.raises(ValueError, match="MIME"):
        codecs.AudioStreamDecoder(format="audio/unknown-thing")


def test_reader_waits_for_data_with_a_timeout_and_close_ends_it() -> None:
    data = encode("wav", "pcm_s16le", 16000, seconds=0.5)
    decoder = codecs.AudioStreamDecoder(sample_rate=16000)
    with pytest.raises(TimeoutError):
        decoder.next(timeout=0.05)  # nothing pushed yet
    decoder.push(data[: len(data) // 2])
    first = decoder.next(timeout=20)  # decoded while the input is still open
    assert first.samples_per_channel > 0

    done = gevent.event.Event()
    got: list[Any] = []

    def reader() -> None:
        for frame in decoder:
            got.append(frame)
        done.set()

    g = gevent.spawn(reader)
    decoder.close()  # from another greenlet than the reader
    assert done.wait(timeout=10)
    g.join(timeout=5)
    with pytest.raises(RuntimeError):
        decoder.push(b"more")
    with codecs.AudioStreamDecoder() as ctx:
        ctx.push(data)
    assert list(ctx) == []  # closed by the with block


def test_greenlets_keep_running_while_a_long_stream_decodes() -> None:
    data = encode("flac", "flac", 44100, seconds=20.0)
    ticks = 0
    stop = gevent.event.Event()

    def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            gevent.sleep(0)

    t = gevent.spawn(ticker)
    decoder = codecs.AudioStreamDecoder(sample_rate=48000)
    decoder.push(data)  # one big chunk: decoding happens on the native thread
    decoder.end_input()
    total = sum(f.samples_per_channel for f in collect(decoder))
    stop.set()
    t.join(timeout=5)
    assert abs(total - 20 * 48000) < 100
    assert ticks > 10  # the hub was never held for the whole decode


# ---- StreamBuffer ----------------------------------------------------------------------------


def test_stream_buffer_between_a_greenlet_and_a_native_thread() -> None:
    buf = codecs.StreamBuffer()
    payload = bytes(range(256)) * 400

    def read_all() -> bytes:  # on a native thread: blocks the OS thread, not the hub
        out = bytearray()
        while True:
            chunk = buf.read(1000, timeout=20)
            if not chunk:
                return bytes(out)
            out += chunk

    writer_rng = random.Random(8)

    def write_all() -> None:
        i = 0
        while i < len(payload):
            n = writer_rng.randint(1, 5000)
            buf.write(payload[i : i + n])
            i += n
            gevent.sleep(0)
        buf.end_input()

    w = gevent.spawn(write_all)
    assert syncagents.to_thread(read_all) == payload
    w.join(timeout=5)


def test_stream_buffer_greenlet_reader_timeout_and_close() -> None:
    buf = codecs.StreamBuffer()
    with pytest.raises(TimeoutError):
        buf.read(timeout=0.01)
    assert buf.read(0) == b""
    buf.write(b"abc")
    assert buf.read(2) == b"ab" and buf.read() == b"c"

    def native_writer() -> None:
        buf.write(b"from a thread")

    reader = gevent.spawn(buf.read, -1, 10)
    gevent.sleep(0)
    syncagents.to_thread(native_writer)  # wakes the greenlet through the hub
    assert reader.get(timeout=10) == b"from a thread"

    waiting = gevent.spawn(buf.read, -1, 10)
    gevent.sleep(0)
    buf.close()
    assert waiting.get(timeout=10) == b""
    with pytest.raises(RuntimeError, match="after end_input"):
        buf.write(b"x")


def wav_file(pcm: bytes, rate: int, channels: int, width: int, *, size_override: int | None = None,
             tag: int = 1, extra_chunk: bool = False) -> bytes:
    """A WAV written by hand: any sample width, an optional LIST chunk before the data, and
    the placeholder data size that streaming servers send."""
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * width, channels * width,
                      width * 8)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if extra_chunk:
        info = b"INFOISFT\x05\x00\x00\x00test\x00\x00"
        chunks += b"LIST" + struct.pack("<I", len(info)) + info
    size = len(pcm) if size_override is None else size_override
    chunks += b"data" + struct.pack("<I", size) + pcm
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@pytest.mark.parametrize("width", [1, 2, 3, 4])
@pytest.mark.parametrize("size_override", [None, 0xFFFFFFFF])
def test_wav_of_any_width_streamed(width: int, size_override: int | None) -> None:
    rate = 22050
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * FREQ * t)
    stereo = np.stack([tone, -tone], axis=1).reshape(-1)
    if width == 1:
        pcm = (stereo * 127 + 128).astype(np.uint8).tobytes()
    elif width == 3:
        ints = (stereo * (2**23 - 1)).astype("<i4")
        pcm = b"".join(int(v).to_bytes(3, "little", signed=True) for v in ints)
    else:
        dtype = {2: "<i2", 4: "<i4"}[width]
        pcm = (stereo * (2 ** (8 * width - 1) - 1)).astype(dtype).tobytes()
    data = wav_file(pcm, rate, 2, width, size_override=size_override, extra_chunk=True)
    decoder = codecs.AudioStreamDecoder(sample_rate=16000, num_channels=1)
    push_in_chunks(decoder, data, random.Random(width), max_chunk=999)
    left_plus_right = samples_of(collect(decoder))
    # the channels cancel out when mixed down: the mix is silent, the length is right
    assert abs(len(left_plus_right) - 16000) < 50
    assert np.abs(left_plus_right).max() < 0.02 * 32767

    mono = codecs.AudioStreamDecoder(sample_rate=16000, num_channels=2)
    push_in_chunks(mono, data, random.Random(width + 10), max_chunk=999)
    pairs = samples_of(collect(mono)).reshape(-1, 2)
    assert abs(dominant_frequency(pairs[:, 0], 16000) - FREQ) < 5


def test_unsupported_wav_is_one_clear_error() -> None:
    data = wav_file(np.zeros(100, "<f4").tobytes(), 16000, 1, 4, tag=3)  # float samples
    decoder = codecs.AudioStreamDecoder()
    decoder.push(data)
    decoder.end_input()
    with pytest.raises(ValueError, match="integer PCM only"):
        decoder.next(timeout=20)
