"""Camera frames over MQTT: a binary envelope carrying its own JSON header.

Layout of a ``camera/frame`` payload::

    b"MCF1" | header length (uint32, big-endian) | header (FrameMeta JSON) | image bytes

The header is the exact `FrameMeta` payload also published on ``camera/frame/meta``.
Carrying it inside the frame keeps header and pixels atomic: MQTT orders messages per
topic only, so a header on another topic cannot be matched reliably with its frame.

Image bytes by ``encoding``: ``raw-u8`` (row-major uint8), ``raw-u16-le`` (row-major
little-endian uint16) or ``png`` (grayscale, 8 or 16 bit, decoded with OpenCV after its
IHDR chunk has been checked against the header, so a small PNG cannot claim a huge image).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
from numpy.typing import NDArray

from ._messages import (
    _MAX_SAFE_INT,
    DEFAULT_LIMITS,
    Limits,
    Message,
    MessageKind,
    Reason,
    TopicInfo,
    _Ctx,
    _decode_json,
    _integer,
    _s,
    _short,
    encode,
    parse_topic,
)

__all__ = ["FRAME_ENCODINGS", "FRAME_MAGIC", "Frame", "FrameMeta", "decode_frame", "decode_frame_data",
           "encode_frame"]

#: First bytes of every ``camera/frame`` payload (format version 1).
FRAME_MAGIC = b"MCF1"
_PREFIX = struct.Struct(">4sI")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Frame encodings and the dtypes they may carry.
FRAME_ENCODINGS: Mapping[str, tuple[str, ...]] = {"raw-u8": ("uint8",), "raw-u16-le": ("uint16",),
                                                  "png": ("uint8", "uint16")}
_RAW_BYTES = {"raw-u8": 1, "raw-u16-le": 2}


@dataclass(frozen=True, kw_only=True)
class FrameMeta(Message):
    """Header of a camera frame (``camera/frame/meta``, and inside each ``camera/frame``).

    Attributes
    ----------
    frame_id : int
        Camera frame counter.
    shape : tuple of int
        (rows, cols) of the grayscale image.
    dtype : {"uint8", "uint16"}
        Pixel type of the decoded image.
    encoding : {"raw-u8", "raw-u16-le", "png"}
        How the image bytes are encoded (see `FRAME_ENCODINGS`).
    byte_count : int
        Length of the encoded image bytes (rows x cols x bytes per pixel when raw).
    um_per_px : float
        Pixel size on the coating, µm.
    position_m : float
        Camera position along the web, m from the coater.
    """

    KIND: ClassVar = (MessageKind.FRAME_META,)
    frame_id: int = field(metadata=_s("int", bounds=(0, _MAX_SAFE_INT)))
    shape: tuple[int, int] = field(metadata=_s("any"))
    dtype: str = field(metadata=_s("choice", choices=("uint8", "uint16")))
    encoding: str = field(metadata=_s("choice", choices=tuple(FRAME_ENCODINGS)))
    byte_count: int = field(metadata=_s("int", "max_frame_bytes"))
    um_per_px: float = field(metadata=_s("float", "um_per_px"))
    position_m: float = field(metadata=_s("float", "position_m"))

    @classmethod
    def _check_values(cls, values: dict[str, Any], ctx: _Ctx) -> None:
        v, most = values["shape"], ctx.limits.max_frame_pixels
        if not (isinstance(v, (list, tuple)) and len(v) == 2):
            raise ctx.err(Reason.TYPE, "shape", f"expected [rows, cols], found {_short(v)}")
        rows, cols = shape = (_integer(v[0], ctx, "shape", (1, most)), _integer(v[1], ctx, "shape", (1, most)))
        if rows * cols > most:
            raise ctx.err(Reason.RANGE, "shape", f"expected at most {most} pixels, found {shape}")
        values["shape"] = shape
        encoding, dtype, n = values["encoding"], values["dtype"], values["byte_count"]
        if dtype not in FRAME_ENCODINGS[encoding]:
            raise ctx.err(Reason.FRAME, "dtype", f"expected one of {list(FRAME_ENCODINGS[encoding])} for encoding "
                                                 f"{encoding!r}, found {dtype!r}")
        if encoding in _RAW_BYTES and n != _RAW_BYTES[encoding] * rows * cols:
            raise ctx.err(Reason.FRAME, "byte_count", f"expected {_RAW_BYTES[encoding]} x rows x cols for "
                                                      f"{encoding}, found {n} for shape {shape}")


@dataclass(frozen=True, eq=False)
class Frame:
    """A camera frame: its header, the decoded image and the encoded image bytes.

    Attributes
    ----------
    meta : FrameMeta
        Header (``meta.shape`` and ``meta.dtype`` describe ``image``).
    image : ndarray, shape (rows, cols), uint8 or uint16
        The pixels.
    data : bytes
        ``image`` as encoded on the wire (``meta.byte_count`` bytes).
    """

    meta: FrameMeta
    image: NDArray[np.unsignedinteger] = field(repr=False)
    data: bytes = field(repr=False)

    @classmethod
    def from_image(cls, image: NDArray[np.unsignedinteger], *, frame_id: int, um_per_px: float, position_m: float,
                   timestamp_s: float, source: str, seq: int, encoding: str | None = None) -> Frame:
        """Build a frame from an image (encodes it once; `encode` then only concatenates).

        Parameters
        ----------
        image : ndarray, shape (rows, cols), uint8 or uint16
            Grayscale frame (kept by reference; not modified).
        frame_id, um_per_px, position_m, timestamp_s, source, seq
            Header fields (see `FrameMeta`).
        encoding : {"raw-u8", "raw-u16-le", "png"}, optional
            Default: raw in the image's dtype.

        Raises
        ------
        ValueError
            Not a 2D uint8/uint16 image, or an encoding that cannot carry its dtype.
        """
        image = np.asarray(image)
        if image.ndim != 2 or image.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"image: expected a 2D uint8 or uint16 array, found {image.ndim}D {image.dtype}")
        dtype = image.dtype.name
        encoding = encoding or ("raw-u8" if dtype == "uint8" else "raw-u16-le")
        if dtype not in FRAME_ENCODINGS.get(encoding, ()):
            raise ValueError(f"encoding: expected one of {[e for e, d in FRAME_ENCODINGS.items() if dtype in d]} "
                             f"for {dtype}, found {encoding!r}")
        if encoding == "png":
            import cv2

            ok, buf = cv2.imencode(".png", image)
            if not ok:  # pragma: no cover - OpenCV encodes any 2D uint8/uint16 array
                raise ValueError("image: PNG encoding failed")
            data = buf.tobytes()
        else:
            data = image.astype("<u2" if dtype == "uint16" else np.uint8, copy=False).tobytes()
        meta = FrameMeta(timestamp_s=timestamp_s, source=source, seq=seq, frame_id=frame_id,
                         shape=(int(image.shape[0]), int(image.shape[1])), dtype=dtype, encoding=encoding,
                         byte_count=len(data), um_per_px=um_per_px, position_m=position_m)
        return cls(meta, image, data)


def encode_frame(frame: Frame, *, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Serialise a frame into the ``camera/frame`` envelope.

    Parameters
    ----------
    frame : Frame
    limits : Limits

    Returns
    -------
    bytes

    Raises
    ------
    MessageError
        Invalid header (as `encode`), ``data`` not ``meta.byte_count`` bytes (``FRAME``)
        or above ``limits.max_frame_bytes`` (``OVERSIZED``).
    """
    header = encode(frame.meta, limits=limits)
    ctx = _Ctx("<encode Frame>", limits)
    if len(frame.data) != frame.meta.byte_count:
        raise ctx.err(Reason.FRAME, "byte_count", f"expected {len(frame.data)} (the data length), "
                                                  f"found {frame.meta.byte_count}")
    size = _PREFIX.size + len(header) + len(frame.data)
    if size > limits.max_frame_bytes:
        raise ctx.err(Reason.OVERSIZED, None, f"expected at most {limits.max_frame_bytes} bytes, found {size}")
    return _PREFIX.pack(FRAME_MAGIC, len(header)) + header + frame.data


def decode_frame(topic: str, payload: bytes, *, now_s: float | None, limits: Limits = DEFAULT_LIMITS) -> Frame:
    """Validate a ``camera/frame`` payload: size, envelope, header, then the pixels.

    Parameters
    ----------
    topic : str
        A ``mudcrack/<line_id>/camera/frame`` topic.
    payload : bytes
    now_s : float or None
        Receiver's clock (``None``: no age check).
    limits : Limits

    Returns
    -------
    Frame

    Raises
    ------
    MessageError
        ``OVERSIZED`` (total above ``max_frame_bytes`` or header above
        ``max_payload_bytes``, before parsing), ``FRAME`` (bad envelope, byte count,
        image data), ``TOPIC``, or any header rejection of `decode`.
    """
    info = parse_topic(topic)
    ctx = _Ctx(topic, limits)
    if info.kind is not MessageKind.FRAME:
        raise ctx.err(Reason.TOPIC, None, f"expected a {MessageKind.FRAME.value} topic")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ctx.err(Reason.TYPE, None, f"expected a bytes payload, found {type(payload).__name__}")
    payload = bytes(payload)
    if len(payload) > limits.max_frame_bytes:
        raise ctx.err(Reason.OVERSIZED, None, f"expected at most {limits.max_frame_bytes} bytes, found {len(payload)}")
    if len(payload) < _PREFIX.size or payload[:4] != FRAME_MAGIC:
        raise ctx.err(Reason.FRAME, None, f"expected a payload starting with {FRAME_MAGIC!r} and a header length, "
                                          f"found {_head(payload)}")
    _, n = _PREFIX.unpack_from(payload)
    if n > limits.max_payload_bytes:
        raise ctx.err(Reason.OVERSIZED, None, f"header: expected at most {limits.max_payload_bytes} bytes, found {n}")
    if _PREFIX.size + n > len(payload):
        raise ctx.err(Reason.FRAME, None, f"header length {n} runs past the payload end ({len(payload)} bytes)")
    header = payload[_PREFIX.size:_PREFIX.size + n]
    meta = _decode_json(TopicInfo(info.line_id, MessageKind.FRAME_META), topic, header, now_s, limits)
    assert isinstance(meta, FrameMeta)
    data = payload[_PREFIX.size + n:]
    return Frame(meta, decode_frame_data(meta, data, topic=topic), data)


def _head(data: bytes) -> str:
    return repr(data[:8]) + ("..." if len(data) > 8 else "")


def decode_frame_data(meta: FrameMeta, data: bytes, *, topic: str = "<frame data>") -> NDArray[np.unsignedinteger]:
    """Decode image bytes described by a (validated) header.

    Parameters
    ----------
    meta : FrameMeta
        The header (from `decode` of ``camera/frame/meta`` or the frame envelope).
    data : bytes
        Image bytes.
    topic : str
        For error messages.

    Returns
    -------
    ndarray, shape meta.shape, dtype meta.dtype
        A new, writable, native-endian array.

    Raises
    ------
    MessageError
        Reason ``FRAME``: byte count, PNG signature / IHDR / decoding, shape or dtype
        disagree with the header.
    """
    ctx = _Ctx(topic, DEFAULT_LIMITS)
    rows, cols = meta.shape
    if len(data) != meta.byte_count:
        raise ctx.err(Reason.FRAME, "byte_count", f"expected {meta.byte_count} image bytes, found {len(data)}")
    if meta.encoding in ("raw-u8", "raw-u16-le"):
        wire = np.dtype(np.uint8) if meta.encoding == "raw-u8" else np.dtype("<u2")
        if len(data) != rows * cols * wire.itemsize:
            raise ctx.err(Reason.FRAME, "shape", f"expected {rows * cols * wire.itemsize} bytes for {meta.shape} "
                                                 f"{meta.encoding}, found {len(data)}")
        return cast("NDArray[np.unsignedinteger]", np.frombuffer(data, wire).reshape(rows, cols).astype(meta.dtype))
    # PNG: check the IHDR chunk before letting a decoder allocate anything
    bit_depth = 8 if meta.dtype == "uint8" else 16
    if len(data) < 33 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise ctx.err(Reason.FRAME, "encoding", f"expected PNG data, found {_head(data)}")
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    if (height, width, depth, colour) != (rows, cols, bit_depth, 0):
        raise ctx.err(Reason.FRAME, "shape", f"expected a {rows}x{cols} {bit_depth}-bit grayscale PNG, found "
                                             f"{height}x{width} {depth}-bit colour type {colour}")
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.shape != (rows, cols) or image.dtype != np.dtype(meta.dtype):
        found = "undecodable data" if image is None else f"{image.shape} {image.dtype}"
        raise ctx.err(Reason.FRAME, "encoding", f"expected a {meta.shape} {meta.dtype} PNG, found {found}")
    return cast("NDArray[np.unsignedinteger]", image)
