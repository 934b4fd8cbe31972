"""syncagents.utils.audio helpers."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from syncagents import rtc
from syncagents.utils.audio import (
    AudioByteStream,
    Resampler,
    from_float32,
    merge_frames,
    resample,
    rms_dbfs,
    sine_frame,
    split_frames,
    to_float32,
)


def pcm(frame: rtc.AudioFrame) -> np.ndarray:
    return np.frombuffer(frame.data, dtype=np.int16)


def dominant_freq(frame: rtc.AudioFrame) -> float:
    x = to_float32(frame, mono=True).astype(np.float64)
    return float(np.argmax(np.abs(np.fft.rfft(x))) * frame.sample_rate / len(x))


def test_sine_frame_and_rms() -> None:
    f = sine_frame(1000, 0.5, 16000, amplitude=0.5)
    assert (f.sample_rate, f.num_channels, f.samples_per_channel) == (16000, 1, 8000)
    # a sine at amplitude A has RMS A/sqrt(2): 0.5 -> -9.03 dBFS
    assert rms_dbfs(f) == pytest.approx(20 * math.log10(0.5 / math.sqrt(2)), abs=0.05)
    assert dominant_freq(f) == pytest.approx(1000, abs=2)
    st = sine_frame(440, 0.1, 48000, num_channels=2, amplitude=0.25)
    x = pcm(st).reshape(-1, 2)
    assert np.array_equal(x[:, 0], x[:, 1])
    assert rms_dbfs(rtc.AudioFrame(bytes(320), 16000, 1, 160)) == -math.inf


def test_merge_frames_concatenates_and_checks_format() -> None:
    parts = [sine_frame(440, 0.01 * (i + 1), 24000, num_channels=2) for i in range(4)]
    merged = merge_frames(parts)
    assert merged.samples_per_channel == sum(p.samples_per_channel for p in parts)
    assert bytes(merged.data) == b"".join(bytes(p.data) for p in parts)
    with pytest.raises(ValueError):
        merge_frames([])
    with pytest.raises(ValueError):
        merge_frames([parts[0], sine_frame(440, 0.01, 16000, num_channels=2)])


def test_split_frames_exact_sizes_keeps_or_pads_the_tail() -> None:
    src = sine_frame(300, 0.125, 16000, num_channels=2)  # 2000 samples
    frames = split_frames(src, 20)
    assert [f.samples_per_channel for f in frames] == [320] * 6 + [80]
    assert bytes(merge_frames(frames).data) == bytes(src.data)
    padded = split_frames(src, 20, pad_last=True)
    assert [f.samples_per_channel for f in padded] == [320] * 7
    assert not pcm(padded[-1])[80 * 2 :].any()
    # a list of odd-sized frames is regrouped
    pieces = [sine_frame(300, d, 44100) for d in (0.003, 0.017, 0.0101)]
    tens = split_frames(pieces, 10)
    assert [f.samples_per_channel for f in tens[:-1]] == [441] * (len(tens) - 1)
    assert sum(f.samples_per_channel for f in tens) == sum(p.samples_per_channel for p in pieces)
    assert split_frames([], 10) == []
    # 10 ms at 22050 Hz is 220.5 samples: frames hold 220
    assert split_frames(sine_frame(300, 0.05, 22050), 10)[0].samples_per_channel == 220


def test_float_round_trip() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, 1000).astype(np.float32)
    f = from_float32(x, 16000)
    assert (f.num_channels, f.samples_per_channel) == (1, 1000)
    back = to_float32(f)
    assert back.dtype == np.float32 and back.shape == (1000,)
    assert np.max(np.abs(back - x)) < 1e-3
    st = from_float32(np.stack([x, -x], axis=1), 8000)
    assert st.num_channels == 2
    y = to_float32(st)
    assert y.shape == (1000, 2)
    assert np.allclose(y[:, 0], -y[:, 1], atol=1e-4)
    assert np.max(np.abs(to_float32(st, mono=True))) < 1e-3  # the channels cancel out
    clipped = from_float32(np.array([2.0, -2.0], dtype=np.float32), 8000)
    assert list(pcm(clipped)) == [32767, -32768]
    interleaved = from_float32(np.zeros(10, dtype=np.float32), 8000, num_channels=2)
    assert interleaved.samples_per_channel == 5
    with pytest.raises(ValueError):
        from_float32(np.zeros(3, dtype=np.float32), 8000, num_channels=2)


@pytest.mark.parametrize(("src_rate", "dst_rate"), [(48000, 16000), (22050, 48000), (16000, 24000)])
def test_resample_keeps_pitch_and_duration(src_rate: int, dst_rate: int) -> None:
    src = split_frames(sine_frame(500, 1.0, src_rate), 10)
    out = resample(src, dst_rate)
    assert all(f.sample_rate == dst_rate for f in out)
    total = sum(f.samples_per_channel for f in out)
    assert total == pytest.approx(dst_rate, rel=0.02)
    merged = merge_frames(out)
    assert dominant_freq(merged) == pytest.approx(500, abs=3)
    assert rms_dbfs(merged) == pytest.approx(rms_dbfs(sine_frame(500, 1.0, src_rate)), abs=0.5)


def test_resampler_passthrough_downmix_and_rate_change() -> None:
    same = sine_frame(440, 0.01, 16000)
    rs = Resampler(16000)
    assert rs.push(same) == [same]  # same rate: the very same object
    assert rs.flush() == []

    stereo = split_frames(sine_frame(440, 0.5, 48000, num_channels=2), 10)
    mono = Resampler(48000, mono=True)
    out = [g for f in stereo for g in mono.push(f)] + mono.flush()
    assert all(f.num_channels == 1 for f in out)
    assert bytes(merge_frames(out).data) == bytes(pcm(merge_frames(stereo)).reshape(-1, 2)[:, 0])

    # the input rate changes mid-stream: the old resampler's tail is flushed first
    rs = Resampler(16000)
    out = []
    for f in split_frames(sine_frame(440, 0.3, 48000), 10) + split_frames(
        sine_frame(440, 0.3, 24000), 10
    ):
        out += rs.push(f)
    out += rs.flush()
    assert sum(f.samples_per_channel for f in out) == pytest.approx(9600, rel=0.02)
    assert all(f.sample_rate == 16000 for f in out)


def test_audio_byte_stream_fixed_frames_from_random_chunks() -> None:
    src = sine_frame(440, 0.237, 24000, num_channels=2)
    data = bytes(src.data)
    bstream = AudioByteStream(24000, 2, samples_per_channel=480)
    rng = random.Random(5)
    frames, i = [], 0
    while i < len(data):
        n = rng.randint(1, 3000)  # odd sizes split samples in half: must be fine
        frames += bstream.write(data[i : i + n])
        i += n
    tail = bstream.flush()
    assert all(f.samples_per_channel == 480 for f in frames)
    assert len(tail) == 1 and tail[0].samples_per_channel == src.samples_per_channel % 480
    assert b"".join(bytes(f.data) for f in frames + tail) == data
    assert bstream.flush() == []
    # default frame size is 10 ms; a dangling half sample is dropped at flush
    b2 = AudioByteStream(16000, 1)
    first = b2.write(bytes(321))
    assert [f.samples_per_channel for f in first] == [160]
    assert b2.flush() == []
    assert [f.samples_per_channel for f in (b2.write(bytes(7)) + b2.flush())] == [3]
