"""Image decoding for the camera-trap detectors.

``decode_image(data, max_side)`` turns encoded bytes into an upright RGB ``uint8`` array plus the
metadata later stages need (upright original size, EXIF fields, a ``truncated`` flag).

Decode size (the speed/parity trade-off)
----------------------------------------
A camera-trap JPEG is typically 8-20 MP, while the detectors look at 640 px (MD-Lite) or 416 px
(YOLOX-nano). libjpeg can decode directly at 1/2, 1/4 or 1/8 scale in the DCT domain
(Pillow ``Image.draft``), which is several times faster than a full decode and then a resize.

* ``max_side=None`` (or ``draft=False``): full decode. This is what the golden outputs were made
  with (``PIL.Image.open -> exif_transpose -> convert('RGB')``), so parity tests use it.
* ``max_side=N``: the caller needs an image whose long side is at least ``N`` pixels (e.g. 640 for
  the detector). JPEGs are then decoded at the largest DCT reduction (1/2, 1/4, 1/8) that still keeps
  the long side >= ``N`` (and the short side >= ``min_short_side`` when given). The result is *not*
  resized further: the model's own preprocessing still does its exact resize on the smaller image.
  The pixels then differ slightly from a full decode followed by the same resize (DCT scaling is a
  box-like filter); the effect on detector scores is measured in ``docs/performance.md``.
* A classifier that needs full-resolution crops asks for ``max_side=None`` (or a larger ``N``).

Other formats (PNG, WebP, BMP, ...) are always fully decoded.

Robustness
----------
* EXIF orientation is applied (``ImageOps.exif_transpose``); ``width``/``height`` are upright.
* CMYK, grayscale, palette, alpha (dropped, as ``convert('RGB')`` does upstream), 16-bit
  (scaled to 8-bit), WebP, BMP and MPO (first frame) are handled.
* A truncated file is decoded as far as possible (the rest stays black) and flagged
  ``truncated=True``.
* Images over ``max_pixels`` are refused *before* decoding (decompression bombs), with ValueError.
* Empty or unrecognised bytes raise ValueError with a human-readable message.
"""

from __future__ import annotations

import io
import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DecodedImage",
    "ExifInfo",
    "decode_image",
    "decode_file",
    "open_image",
]

#: Refuse images with more pixels than this (about 89 MP, Pillow's own warning limit; Pillow itself
#: refuses twice that). Camera-trap frames are 2-30 MP.
DEFAULT_MAX_PIXELS = 89_478_485

_TAG_ORIENTATION = 0x0112
_TAG_MAKE = 0x010F
_TAG_MODEL = 0x0110
_TAG_DATETIME = 0x0132
_IFD_EXIF = 0x8769
_IFD_GPS = 0x8825
_TAG_DATETIME_ORIGINAL = 0x9003
_TAG_BODY_SERIAL = 0xA431  # Exif BodySerialNumber
_TAG_CAMERA_SERIAL = 0xC62F  # DNG CameraSerialNumber (IFD0)

# Pillow only decodes truncated non-JPEG files when the module-global
# ImageFile.LOAD_TRUNCATED_IMAGES is set. We first decode strictly; only when that fails with
# "truncated" do we decode again with the flag set, under this lock, and restore it. (A strict
# decode running in another thread during that short window could miss its own truncation flag;
# JPEGs never take this path.)
_TRUNCATED_LOCK = threading.Lock()


@dataclass(frozen=True)
class ExifInfo:
    """The EXIF fields later stages use. Missing fields are ``None``."""

    datetime_original: str | None = None
    make: str | None = None
    model: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    orientation: int | None = None
    serial: str | None = None  # the camera body's serial number (BodySerialNumber), when the camera writes one

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class DecodedImage:
    """An upright RGB image, possibly decoded at a DCT reduction.

    ``width``/``height`` are the upright size of the *original* image (after EXIF orientation);
    ``rgb`` has shape ``(h, w, 3)`` with ``w = round(width * scale)`` (``scale`` 1, 1/2, 1/4 or 1/8
    up to rounding; ``scale_x``/``scale_y`` are exact).
    """

    rgb: np.ndarray
    width: int
    height: int
    format: str
    truncated: bool = False
    exif: ExifInfo = field(default_factory=ExifInfo)
    mode: str = "RGB"  # the stored colour mode before conversion (e.g. CMYK, L, P)

    @property
    def scale_x(self) -> float:
        return self.rgb.shape[1] / self.width

    @property
    def scale_y(self) -> float:
        return self.rgb.shape[0] / self.height

    @property
    def scale(self) -> float:
        return self.scale_x

    def to_pil(self) -> Image.Image:
        return Image.fromarray(self.rgb, "RGB")


def _rational(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError, ZeroDivisionError):
        if isinstance(v, tuple) and len(v) == 2 and v[1]:
            return float(v[0]) / float(v[1])
        raise


def _gps_coord(values: Any, ref: Any) -> float | None:
    try:
        d, m, s = (_rational(x) for x in values)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    out = d + m / 60.0 + s / 3600.0
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    if isinstance(ref, str) and ref.strip().upper() in ("S", "W"):
        out = -out
    return out if np.isfinite(out) else None


def _ref_text(ref: Any) -> str:
    if isinstance(ref, bytes):
        ref = ref.decode("ascii", "ignore")
    return ref.replace("\x00", "").strip().upper() if isinstance(ref, str) else ""


def _gps_position(gps: Any) -> tuple[float | None, float | None]:
    """Latitude and longitude of a GPS IFD, or (None, None) for a position that is not one.

    Camera traps without a GPS receiver often write a placeholder: no hemisphere references and the same
    number as latitude and longitude (e.g. 1deg 20' 1" / 1deg 20' 1"), or 0, 0. Those, and values outside
    [-90, 90] / [-180, 180], are dropped rather than reported as a real coordinate.
    """
    lat = _gps_coord(gps.get(2), gps.get(1)) if 2 in gps else None
    lon = _gps_coord(gps.get(4), gps.get(3)) if 4 in gps else None
    if lat is None or lon is None:
        return None, None
    refs_missing = _ref_text(gps.get(1)) not in ("N", "S") or _ref_text(gps.get(3)) not in ("E", "W")
    if (refs_missing and abs(lat) == abs(lon)) or (lat == 0.0 and lon == 0.0):
        return None, None
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        return None, None
    return lat, lon


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    s = str(v).replace("\x00", "").strip()
    return s or None


def _read_exif(img: Image.Image) -> ExifInfo:
    try:
        exif = img.getexif()
    except Exception:  # malformed EXIF must never fail the decode
        return ExifInfo()
    if not exif:
        return ExifInfo()
    try:
        sub = exif.get_ifd(_IFD_EXIF)
    except Exception:
        sub = {}
    try:
        gps = exif.get_ifd(_IFD_GPS)
    except Exception:
        gps = {}
    lat, lon = _gps_position(gps) if gps else (None, None)
    orientation = exif.get(_TAG_ORIENTATION)
    try:
        orientation = int(orientation) if orientation is not None else None
    except (TypeError, ValueError):
        orientation = None
    return ExifInfo(
        datetime_original=_text(sub.get(_TAG_DATETIME_ORIGINAL)) or _text(exif.get(_TAG_DATETIME)),
        make=_text(exif.get(_TAG_MAKE)),
        model=_text(exif.get(_TAG_MODEL)),
        gps_lat=lat,
        gps_lon=lon,
        orientation=orientation,
        serial=_text(sub.get(_TAG_BODY_SERIAL)) or _text(exif.get(_TAG_CAMERA_SERIAL)),
    )


def _draft_scale(width: int, height: int, max_side: int, min_short_side: int | None) -> int:
    """Largest DCT reduction (1, 2, 4, 8) that keeps the long side >= max_side (and short side)."""
    long_side, short_side = max(width, height), min(width, height)
    for s in (8, 4, 2):
        if -(-long_side // s) < max_side:
            continue
        if min_short_side is not None and -(-short_side // s) < min_short_side:
            continue
        return s
    return 1


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    mode = img.mode
    if mode == "RGB":
        arr = np.asarray(img)
    elif mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: scale to 8 bits instead of clipping.
        a = np.asarray(img).astype(np.int64)
        a = a >> 8 if mode.startswith("I;16") or a.max(initial=0) > 255 else a
        g = np.clip(a, 0, 255).astype(np.uint8)
        arr = np.repeat(g[..., None], 3, axis=2)
    elif mode == "F":
        f = np.asarray(img, dtype=np.float64)
        f = f * 255.0 if f.max(initial=0.0) <= 1.0 else f
        g = np.clip(np.nan_to_num(f), 0, 255).round().astype(np.uint8)
        arr = np.repeat(g[..., None], 3, axis=2)
    else:
        # CMYK, L, LA, P (palette, with or without transparency), RGBA, 1, YCbCr, LAB...
        # Alpha is dropped, as upstream does with convert('RGB').
        arr = np.asarray(img.convert("RGB"))
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"could not convert image mode {mode!r} to 8-bit RGB")
    return np.ascontiguousarray(arr)


def _open(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ValueError("empty file (0 bytes): not an image")
    try:
        img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ValueError(f"image refused: too many pixels (decompression bomb?): {e}") from None
    except UnidentifiedImageError:
        raise ValueError(f"not a recognised image file ({len(data)} bytes, starts with {data[:8].hex()})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ValueError(f"could not read image header: {e}") from None
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ValueError(f"invalid image size {w}x{h}")
    if w * h > max_pixels:
        raise ValueError(
            f"image refused: {w}x{h} = {w * h} pixels exceeds the limit of {max_pixels} (possible decompression bomb)"
        )
    return img


@dataclass
class _Loaded:
    img: Image.Image
    truncated: bool
    format: str
    mode: str
    exif: ExifInfo
    stored_size: tuple[int, int]


def _load(data: bytes, max_pixels: int, max_side: int | None, min_short_side: int | None, draft: bool) -> _Loaded:
    """Open + (optionally) draft + load."""

    def opened(buf: bytes) -> tuple[Image.Image, str, str, ExifInfo, tuple[int, int]]:
        img = _open(buf, max_pixels)
        fmt = img.format or "unknown"
        mode = img.mode
        size = img.size
        exif = _read_exif(img)
        if draft and max_side is not None and fmt in ("JPEG", "MPO"):
            s = _draft_scale(img.width, img.height, max_side, min_short_side)
            if s > 1:
                img.draft(None, (img.width // s, img.height // s))
        return img, fmt, mode, exif, size

    img, fmt, mode, exif, size = opened(data)
    try:
        img.load()
        return _Loaded(img, False, fmt, mode, exif, size)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as e:
        msg = str(e).lower()
        if "truncated" not in msg and "broken data stream" not in msg and "unexpected end" not in msg:
            raise ValueError(f"could not decode image ({fmt}): {e}") from None
    # Truncated: decode as far as the data goes.
    try:
        if fmt in ("JPEG", "MPO"):
            # Appending an EOI marker makes libjpeg finish the scan early (rest = grey), which is
            # pixel-identical to Pillow's LOAD_TRUNCATED_IMAGES path but needs no global flag.
            img, fmt, mode, exif, size = opened(data + b"\xff\xd9")
            img.load()
        else:
            with _TRUNCATED_LOCK:
                old = ImageFile.LOAD_TRUNCATED_IMAGES
                ImageFile.LOAD_TRUNCATED_IMAGES = True
                try:
                    img, fmt, mode, exif, size = opened(data)
                    img.load()
                finally:
                    ImageFile.LOAD_TRUNCATED_IMAGES = old
    except ValueError:
        raise
    except Exception as e2:
        raise ValueError(f"could not decode truncated image ({fmt}): {e2}") from None
    return _Loaded(img, True, fmt, mode, exif, size)


def decode_image(
    data: bytes,
    max_side: int | None = None,
    *,
    min_short_side: int | None = None,
    draft: bool = True,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> DecodedImage:
    """Decode encoded image bytes to an upright RGB uint8 array.

    ``max_side``: the long side (in pixels) the caller needs; JPEGs may be decoded at a DCT
    reduction as long as the long side stays >= ``max_side`` (and the short side >=
    ``min_short_side``). ``None`` = full decode (bit-exact with ``exif_transpose + convert('RGB')``).
    Raises ValueError for empty, unrecognised, undecodable or oversized input.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected image bytes, got {type(data).__name__}")
    data = bytes(data)
    ld = _load(data, max_pixels, max_side, min_short_side, draft)
    img, exif, fmt = ld.img, ld.exif, ld.format
    # Upright original size: the stored (header) size, swapped for orientations 5-8.
    stored_w, stored_h = ld.stored_size
    if exif.orientation in (5, 6, 7, 8):
        width, height = stored_h, stored_w
    else:
        width, height = stored_w, stored_h
    try:
        upright = ImageOps.exif_transpose(img) if exif.orientation not in (None, 1) else img
        rgb = _to_rgb_array(upright if upright is not None else img)
    except ValueError:
        raise
    except Exception as e:  # pragma: no cover - defensive: decoder errors surface as ValueError
        raise ValueError(f"could not decode image ({fmt}): {e}") from None
    return DecodedImage(
        rgb=rgb, width=width, height=height, format=fmt, truncated=ld.truncated, exif=exif, mode=ld.mode
    )


def decode_file(path: str, max_side: int | None = None, **kw: Any) -> DecodedImage:
    """Read a file and ``decode_image`` it."""
    with open(path, "rb") as f:
        return decode_image(f.read(), max_side, **kw)


def open_image(item: Any) -> Image.Image:
    """Encoded bytes (loaded now) or a PIL image -> PIL image, as is (no EXIF turn, no mode change).

    For models whose upstream reads the file with a plain ``Image.open`` (the deepfake vision
    models); ValueError with the reason for empty, undecodable or unsupported input.
    """
    if isinstance(item, (bytes, bytearray, memoryview)):
        if len(item) == 0:
            raise ValueError("empty image (0 bytes)")
        try:
            im = Image.open(io.BytesIO(bytes(item)))
            im.load()
        except Exception as exc:  # PIL raises many types for corrupt data
            raise ValueError(f"cannot decode image: {exc}") from exc
        return im
    if isinstance(item, Image.Image):
        return item
    raise ValueError(f"unsupported image input type {type(item).__name__}")
