"""Images in a chat context, and their serialisation for vision models.

``ChatImage`` goes in a message's content list beside text. Serialising it gives what an
OpenAI-style request needs: a URL the server fetches itself, or a ``data:`` URL holding the
image base64-encoded. Video frames are encoded to JPEG with PyAV (imported on first use),
scaled down to fit ``inference_width`` x ``inference_height`` when given; encoded bytes are
sent as they are, their type read from their first bytes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

__all__ = ["ChatImage", "image_mime_type", "serialize_image"]

ImageDetail = Literal["auto", "low", "high"]
_DETAILS = ("auto", "low", "high")

# numpy-readable layouts of livekit VideoBufferType values -> PyAV pixel format
_PACKED_FORMATS = {"RGBA": "rgba", "BGRA": "bgra", "ARGB": "argb", "ABGR": "abgr"}


def _is_video_frame(obj: Any) -> bool:
    # duck-typed so importing this module does not load livekit's native library
    return all(hasattr(obj, a) for a in ("width", "height", "type", "data", "convert"))


@dataclass
class ChatImage:
    """An image in a message's content: ``ChatMessage(role="user", content=["What is
    this?", ChatImage(image=frame)])``.

    Args:
        image: an ``http(s)://`` or ``data:`` URL, the encoded bytes of a JPEG, PNG, GIF or
            WebP file, or an ``rtc.VideoFrame`` (encoded to JPEG when serialised).
        inference_width: with ``inference_height``, the box a video frame is scaled down
            to fit (keeping its aspect ratio) before encoding; bytes and URLs are sent as is.
        inference_height: see ``inference_width``.
        inference_detail: OpenAI's ``detail`` for the image: "auto", "low" or "high".
    """

    image: Any
    inference_width: int | None = None
    inference_height: int | None = None
    inference_detail: ImageDetail = "auto"
    _cache: dict[Any, str] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        img = self.image
        if isinstance(img, (bytearray, memoryview)):
            self.image = img = bytes(img)
        if isinstance(img, str):
            if not img.startswith(("http://", "https://", "data:")):
                raise ValueError("ChatImage: a str image must be an http(s):// or data: URL")
        elif isinstance(img, bytes):
            image_mime_type(img)  # rejects bytes that are no known image format, now
        elif not _is_video_frame(img):
            raise TypeError(
                "ChatImage: image must be a URL str, encoded image bytes or an rtc.VideoFrame, "
                f"got {type(img).__name__}"
            )
        if self.inference_detail not in _DETAILS:
            raise ValueError(f"ChatImage: inference_detail must be one of {_DETAILS}")
        for name in ("inference_width", "inference_height"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise ValueError(f"ChatImage: {name} must be a positive int, got {value!r}")


def image_mime_type(data: bytes) -> str:
    """The MIME type of encoded image bytes, from their signature; ValueError if unknown."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ValueError("ChatImage: bytes must be an encoded JPEG, PNG, GIF or WebP image")


def _fit(width: int, height: int, box_w: int | None, box_h: int | None) -> tuple[int, int]:
    """The size that fits (width, height) into the box, keeping the aspect ratio; never
    upscaled. JPEG with 4:2:0 chroma needs even sizes."""
    scale = 1.0
    if box_w:
        scale = min(scale, box_w / width)
    if box_h:
        scale = min(scale, box_h / height)
    w = max(2, round(width * scale) // 2 * 2)
    h = max(2, round(height * scale) // 2 * 2)
    return w, h


def _to_av_frame(frame: Any) -> Any:
    import av
    import numpy as np

    from .._bridge import livekit_rtc

    lk = livekit_rtc()
    w, h = frame.width, frame.height
    kind = lk.VideoBufferType.Name(frame.type)
    data = np.frombuffer(frame.data, dtype=np.uint8)
    if kind in _PACKED_FORMATS:
        return av.VideoFrame.from_ndarray(
            data[: w * h * 4].reshape(h, w, 4), format=_PACKED_FORMATS[kind]
        )
    if kind == "RGB24":
        return av.VideoFrame.from_ndarray(data[: w * h * 3].reshape(h, w, 3), format="rgb24")
    if kind in ("I420", "NV12") and w % 2 == 0 and h % 2 == 0:
        fmt = "yuv420p" if kind == "I420" else "nv12"
        return av.VideoFrame.from_ndarray(data[: w * h * 3 // 2].reshape(h * 3 // 2, w), fmt)
    # other layouts (I422, I444, I010, odd-sized YUV): let livekit convert to RGBA first
    rgba = frame.convert(lk.VideoBufferType.RGBA)
    arr = np.frombuffer(rgba.data, dtype=np.uint8)[: w * h * 4].reshape(h, w, 4)
    return av.VideoFrame.from_ndarray(arr, format="rgba")


def encode_video_frame(
    frame: Any, width: int | None = None, height: int | None = None, quality: int = 3
) -> bytes:
    """Encode an ``rtc.VideoFrame`` as JPEG, scaled down to fit ``width`` x ``height``.

    Args:
        frame: the frame, any buffer type.
        width: the box width (None: no limit).
        height: the box height (None: no limit).
        quality: JPEG quantiser scale, 2 (best) to 31.
    """
    import av

    src = _to_av_frame(frame)
    w, h = _fit(src.width, src.height, width, height)
    ctx: Any = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = w, h
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    ctx.options = {"qmin": str(quality), "qmax": str(quality)}
    out = src.reformat(width=w, height=h, format="yuvj420p")
    packets = [*ctx.encode(out), *ctx.encode(None)]
    return b"".join(bytes(p) for p in packets)


def serialize_image(image: ChatImage) -> str:
    """The URL to send for ``image``: its own URL, or a base64 ``data:`` URL (frames are
    encoded once per image and size, then cached on the ``ChatImage``)."""
    img = image.image
    if isinstance(img, str):
        return img
    if isinstance(img, bytes):
        return f"data:{image_mime_type(img)};base64,{base64.b64encode(img).decode()}"
    key = (id(img), image.inference_width, image.inference_height)
    url = image._cache.get(key)
    if url is None:
        jpeg = encode_video_frame(img, image.inference_width, image.inference_height)
        url = f"data:image/jpeg;base64,{base64.b64encode(jpeg).decode()}"
        image._cache.clear()  # one entry: the image is not expected to change size often
        image._cache[key] = url
    return url
