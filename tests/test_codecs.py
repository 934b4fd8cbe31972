"""MP3 streaming decoder (PyAV) and WAV helpers."""

from __future__ import annotations

import io
import random
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from loguru import logger

from syncagents import codecs, rtc
from syncagents.codecs import Mp3StreamDecoder, encode_mp3, read_wav, write_wav
from syncagents.codecs.mp3 import frame_to_int16
from syncagents.utils.audio import merge_frames, rms_dbfs, sine_frame, split_frames


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """WARNING+ messages logged through loguru while the test runs."""
    seen: list[str] = []
    sink = logger.add(lambda m: seen.append(str(m)), level="WARNING")
    try:
        yield seen
    finally:
        logger.remove(sink)


def decode_in_chunks(data: bytes, rng: random.Random, max_chunk: int = 4000) -> list[Any]:
    dec = Mp3StreamDecoder()
    frames: list[Any] = []
    i = 0
    while i < len(data):
        n = rng.randint(1, max_chunk)
        frames += dec.decode_chunk(data[i : i + n])
        i += n
    frames += dec.flush()
    return frames


def duration(frames: list[Any]) -> float:
    return sum(f.samples_per_channel / f.sample_rate for f in frames)


def dominant_freq(frame: Any) -> float:
    x = np.frombuffer(frame.data, dtype=np.int16).reshape(-1, frame.num_channels)[:, 0]
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64)))
    return float(np.argmax(spectrum) * frame.sample_rate / len(x))


@pytest.mark.parametrize(
    ("rate", "channels", "freq"), [(44100, 1, 440.0), (48000, 2, 1000.0), (16000, 1, 300.0)]
)
def test_mp3_round_trip_random_chunks(
    rate: int, channels: int, freq: float, warnings: list[str]
) -> None:
    source = sine_frame(freq, 3.0, rate, num_channels=channels)
    mp3 = encode_mp3(split_frames(source, 20))
    assert mp3[:3] == b"ID3"  # libavformat puts a tag in front: skipping it is exercised too
    for seed in range(3):
        frames = decode_in_chunks(mp3, random.Random(seed))
        assert frames
        assert {(f.sample_rate, f.num_channels) for f in frames} == {(rate, channels)}
        assert duration(frames) == pytest.approx(3.0, rel=0.05)
        merged = merge_frames(frames)
        assert rms_dbfs(merged) == pytest.approx(rms_dbfs(source), abs=1.0)
        assert dominant_freq(merged) == pytest.approx(freq, rel=0.02)
    assert warnings == []


def test_mp3_chunk_boundaries_do_not_change_output() -> None:
    mp3 = encode_mp3(sine_frame(440, 1.0, 24000))
    whole = Mp3StreamDecoder()
    ref = merge_frames(whole.decode_chunk(mp3) + whole.flush())
    for max_chunk in (1, 7, 417, 5000):
        got = merge_frames(decode_in_chunks(mp3, random.Random(max_chunk), max_chunk))
        assert bytes(got.data) == bytes(ref.data)


def test_mp3_corrupt_middle_recovers_with_one_warning(warnings: list[str]) -> None:
    mp3 = encode_mp3(sine_frame(440, 4.0, 48000, num_channels=2))
    clean = duration(decode_in_chunks(mp3, random.Random(0)))
    assert warnings == []
    for seed in range(5):
        warnings.clear()
        damaged = bytearray(mp3)
        mid = len(damaged) // 2
        damaged[mid : mid + 4000] = np.random.default_rng(seed).integers(
            0, 256, 4000, dtype=np.uint8
        ).tobytes()
        frames = decode_in_chunks(bytes(damaged), random.Random(seed), 3000)
        # 4000 bytes at 128 kbit/s is 0.25 s; most of the rest must come back
        assert duration(frames) >= clean - 0.6
        assert len(warnings) == 1, warnings
        assert "corrupt" in warnings[0]


def test_mp3_garbage_and_empty_input_never_raise(warnings: list[str]) -> None:
    dec = Mp3StreamDecoder()
    assert dec.decode_chunk(b"") == []
    junk = np.random.default_rng(3).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    dec.decode_chunk(junk)
    dec.flush()
    assert len(warnings) == 1
    assert Mp3StreamDecoder().flush() == []


def _id3_tag(payload: bytes) -> bytes:
    size = len(payload)
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    return b"ID3\x03\x00\x00" + syncsafe + payload


def test_mp3_id3_tags_are_skipped(warnings: list[str]) -> None:
    mp3 = encode_mp3(sine_frame(440, 1.0, 44100))
    ref_dec = Mp3StreamDecoder()
    ref = merge_frames(ref_dec.decode_chunk(mp3) + ref_dec.flush())
    # a big tag full of fake frame sync words, twice, in front of the (already tagged) file
    rng = np.random.default_rng(7)
    payload = bytearray(rng.integers(0, 256, 6000, dtype=np.uint8).tobytes())
    for i in range(0, len(payload) - 4, 97):
        payload[i : i + 4] = b"\xff\xfb\x90\x64"
    tagged = _id3_tag(bytes(payload)) + _id3_tag(b"\x00" * 300) + mp3
    for max_chunk in (1, 5, 9, 64, 10000):
        got = merge_frames(decode_in_chunks(tagged, random.Random(max_chunk), max_chunk))
        assert bytes(got.data) == bytes(ref.data)
    assert warnings == []


def test_mp3_decoder_is_reusable_after_flush() -> None:
    mp3 = encode_mp3(sine_frame(440, 0.5, 16000))
    dec = Mp3StreamDecoder()
    first = duration(dec.decode_chunk(mp3) + dec.flush())
    second = duration(dec.decode_chunk(mp3) + dec.flush())
    assert first == pytest.approx(second)
    # MPEG-2 frames are 36 ms here; encoder delay, padding and the Xing frame add ~0.1 s
    assert first == pytest.approx(0.5, abs=0.15)


@pytest.mark.parametrize("fmt", ["fltp", "flt", "s16", "s16p", "s32p", "s32", "dblp"])
@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_frame_to_int16_any_layout(fmt: str, layout: str) -> None:
    channels = 1 if layout == "mono" else 2
    n = 64
    left = np.linspace(-0.5, 0.5, n)
    right = -left
    planes = np.stack([left, right][:channels])  # (channels, samples)
    fmt_obj = av.AudioFormat(fmt)
    if fmt.startswith("s16"):
        data = np.round(planes * 32767).astype(np.int16)
    elif fmt.startswith("s32"):
        data = np.round(planes * 2147483647).astype(np.int32)
    elif fmt.startswith("dbl"):
        data = planes.astype(np.float64)
    else:
        data = planes.astype(np.float32)
    if not fmt_obj.is_planar:
        data = data.T.reshape(1, -1)  # packed: one interleaved row
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
    pcm, got_channels = frame_to_int16(frame)
    assert got_channels == channels and pcm.dtype == np.int16
    expected = np.round(planes.T.reshape(-1) * 32767)
    assert np.max(np.abs(pcm.astype(np.int64) - expected)) <= 2


def test_wav_round_trip_path_and_bytes(tmp_path: Path) -> None:
    stereo = sine_frame(440, 0.3, 22050, num_channels=2)
    path = tmp_path / "a.wav"
    write_wav(path, split_frames(stereo, 10))
    frame, rate, channels = read_wav(path)
    assert (rate, channels) == (22050, 2)
    assert bytes(frame.data) == bytes(stereo.data)
    frame2, rate2, _ = read_wav(codecs.wav_bytes(stereo))
    assert rate2 == 22050 and bytes(frame2.data) == bytes(stereo.data)
    frame3, _, _ = read_wav(str(path))
    assert frame3.samples_per_channel == stereo.samples_per_channel


@pytest.mark.parametrize("width", [1, 3, 4])
def test_read_wav_other_sample_widths(width: int) -> None:
    x = np.array([0, 16384, -16384, 32767, -32768], dtype=np.int16)
    if width == 1:
        raw = ((x >> 8) + 128).astype(np.uint8).tobytes()
    elif width == 3:
        wide = x.astype(np.int32) << 8
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in wide)
    else:
        raw = (x.astype(np.int32) << 16).astype("<i4").tobytes()
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(width)
        w.setframerate(8000)
        w.writeframes(raw)
    frame, rate, channels = read_wav(buf.getvalue())
    got = np.frombuffer(frame.data, dtype=np.int16)
    tolerance = 256 if width == 1 else 0
    assert (rate, channels) == (8000, 1)
    assert np.max(np.abs(got.astype(np.int32) - x)) <= tolerance


def test_read_wav_rejects_non_wav() -> None:
    with pytest.raises(ValueError):
        read_wav(b"not a wav file at all")


def test_wav_writer_streams_and_checks_format(tmp_path: Path) -> None:
    path = tmp_path / "rec.wav"
    frames = split_frames(sine_frame(300, 0.5, 16000), 10)
    with codecs.WavWriter(path) as w:
        for i, f in enumerate(frames):
            w.write_frame(f)
            if i == 9:
                # the header is kept current: the file is readable mid-recording
                partial, _, _ = read_wav(path)
                assert partial.samples_per_channel == 1600
        with pytest.raises(ValueError):
            w.write_frame(sine_frame(300, 0.01, 48000))
        assert w.duration == pytest.approx(0.5)
    frame, rate, channels = read_wav(path)
    assert (rate, channels) == (16000, 1)
    assert bytes(frame.data) == bytes(merge_frames(frames).data)
    with pytest.raises(ValueError):
        w.write_frame(frames[0])  # closed

    empty = tmp_path / "empty.wav"
    codecs.WavWriter(empty, 24000, 1).close()
    frame, rate, _ = read_wav(empty)
    assert rate == 24000 and frame.samples_per_channel == 0
    assert isinstance(frame, rtc.AudioFrame)
