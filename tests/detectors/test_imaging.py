"""decode_image: golden decode digests, formats, orientation, truncation, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from sleuth.media.images import decode_image

from .conftest import CT, DATA, MODELS, needs_data


def _sha(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _png(img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


@needs_data
def test_full_decode_matches_golden_digests() -> None:
    ref = json.loads((MODELS / "zamba_mdlite" / "reference_outputs.json").read_text())
    for r in ref["results"]:
        im = decode_image((DATA / r["shared_path"]).read_bytes())
        want = r["decoded_image"]
        assert (im.width, im.height) == (want["width"], want["height"]), r["shared_path"]
        assert im.rgb.shape == (want["height"], want["width"], 3)
        assert _sha(im.rgb) == want["rgb_uint8_sha256"], r["shared_path"]
        assert im.exif.orientation == want["exif_orientation_tag"]
        assert not im.truncated
    # the cv2 (BGR) decode digests of the YOLOX-nano references agree with our RGB decode
    ref2 = json.loads((MODELS / "yolox_nano_coco" / "reference_outputs.json").read_text())
    for r in ref2["results"]:
        im = decode_image((DATA / r["shared_path"]).read_bytes())
        assert _sha(im.rgb[..., ::-1]) == r["decoded_image"]["cv2_bgr_uint8_sha256"]


@needs_data
def test_manifest_images_decode_with_upright_size() -> None:
    man = json.loads((CT / "manifest.json").read_text())
    for r in man["images"]:
        data = (CT / r["path"]).read_bytes()
        if "zero_byte" in r["edge_case"]:
            with pytest.raises(ValueError, match="empty"):
                decode_image(data)
            continue
        im = decode_image(data, 640)
        assert (im.width, im.height) == (r["width"], r["height"]), r["path"]
        assert max(im.rgb.shape[:2]) >= min(640, max(r["width"], r["height"]))
        assert im.truncated == ("truncated_jpeg" in r["edge_case"]), r["path"]
        assert im.rgb.dtype == np.uint8 and im.rgb.shape[2] == 3
        if "mpo_multi_picture_jpeg" in r["edge_case"]:
            assert im.format == "MPO"


@needs_data
def test_edge_cases_decode_like_the_plain_image() -> None:
    base = decode_image((CT / "speciesnet/african_elephants.jpg").read_bytes()).rgb.astype(np.int16)
    for name, tol in (("african_elephants_cmyk.jpg", 12), ("african_elephants_with_exif_orientation.jpg", 3)):
        im = decode_image((CT / "speciesnet" / name).read_bytes())
        assert im.rgb.shape == base.shape
        assert np.abs(im.rgb.astype(np.int16) - base).mean() < tol, name
    bw = decode_image((CT / "speciesnet/african_elephants_bw.jpg").read_bytes())
    assert bw.mode == "L" and np.array_equal(bw.rgb[..., 0], bw.rgb[..., 2])
    rot = decode_image((CT / "speciesnet/african_elephants_with_exif_orientation.jpg").read_bytes(), 640)
    assert rot.exif.orientation == 6 and rot.rgb.shape[1] > rot.rgb.shape[0]
    tr = decode_image((CT / "speciesnet/african_elephants_truncated_file.jpg").read_bytes())
    assert tr.truncated and tr.rgb.shape == base.shape
    # top rows decoded like the full file, bottom rows grey (libjpeg fills the rest)
    assert np.abs(tr.rgb[:100].astype(np.int16) - base[:100]).mean() < 3
    assert (tr.rgb[-1] == 128).all()


@needs_data
def test_draft_decode_sizes() -> None:
    data = (CT / "speciesnet/human.jpg").read_bytes()  # 3072 x 1728
    full = decode_image(data)
    d640 = decode_image(data, 640)
    assert d640.rgb.shape == (432, 768, 3) and d640.scale == pytest.approx(0.25)
    assert decode_image(data, 640, min_short_side=600).rgb.shape == (864, 1536, 3)
    assert decode_image(data, 640, draft=False).rgb.shape == full.rgb.shape
    assert decode_image(data, 5000).rgb.shape == full.rgb.shape


def test_bad_input_raises_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        decode_image(b"")
    with pytest.raises(ValueError, match="not a recognised image"):
        decode_image(b"this is not an image at all" * 10)
    with pytest.raises(ValueError):
        decode_image(b"\xff\xd8\xff\xe0" + b"\x00" * 50)  # JPEG magic, garbage after
    with pytest.raises(ValueError):
        decode_image("a string")  # type: ignore[arg-type]


def test_decompression_bomb_refused_before_decoding() -> None:
    # A PNG header claiming 100000 x 100000 pixels (10 Gpx) with no pixel data.
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")
    with pytest.raises(ValueError, match="pixels"):
        decode_image(bomb)
    small = _png(Image.new("RGB", (200, 100)))
    with pytest.raises(ValueError, match="exceeds the limit"):
        decode_image(small, max_pixels=10_000)
    assert decode_image(small, max_pixels=20_000).rgb.shape == (100, 200, 3)


def test_formats_and_modes() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    for fmt in ("PNG", "BMP", "WEBP", "TIFF"):
        buf = io.BytesIO()
        img.save(buf, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        out = decode_image(buf.getvalue())
        assert out.format == fmt and np.array_equal(out.rgb, rgb), fmt
    # 16-bit grayscale PNG -> top 8 bits
    g16 = (np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 21).astype(np.uint16)
    out = decode_image(_png(Image.fromarray(g16)))
    assert np.array_equal(out.rgb[..., 0], (g16 >> 8).astype(np.uint8))
    # palette with transparency and RGBA: alpha dropped, colours kept
    pal = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    out = decode_image(_png(pal, transparency=0))
    assert np.array_equal(out.rgb, np.asarray(pal.convert("RGB")))
    rgba = Image.fromarray(np.dstack([rgb, np.full((48, 64), 7, np.uint8)]), "RGBA")
    assert np.array_equal(decode_image(_png(rgba)).rgb, rgb)
    la = Image.fromarray(np.dstack([rgb[..., 0], rgb[..., 1]]), "LA")
    assert np.array_equal(decode_image(_png(la)).rgb[..., 1], rgb[..., 0])
    # truncated PNG: decoded as far as possible and flagged (a PNG of noise barely compresses)
    full = _png(img)
    out = decode_image(full[: len(full) * 2 // 3])
    assert out.truncated and out.rgb.shape == rgb.shape


def test_exif_fields_and_orientation() -> None:
    img = Image.fromarray(np.zeros((40, 80, 3), np.uint8))
    img.paste((255, 0, 0), (0, 0, 10, 10))  # red mark top-left of the stored image
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW for display
    exif[0x010F] = "ACME"
    exif[0x0110] = "Trap 3000"
    exif.get_ifd(0x8769)[0x9003] = "2024:05:06 07:08:09"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "S", (12.0, 30.0, 0.0)
    gps[3], gps[4] = "W", (45.0, 15.0, 36.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif, quality=95)
    out = decode_image(buf.getvalue())
    assert (out.width, out.height) == (40, 80) and out.rgb.shape == (80, 40, 3)
    assert out.rgb[:10, -10:, 0].mean() > 200  # the mark is now top-right
    e = out.exif
    assert (e.make, e.model, e.datetime_original, e.orientation) == ("ACME", "Trap 3000", "2024:05:06 07:08:09", 6)
    assert e.gps_lat == pytest.approx(-12.5) and e.gps_lon == pytest.approx(-(45 + 15 / 60 + 36 / 3600))


def _exif_jpeg(gps_fields: dict[int, Any], serial: str | None = None) -> bytes:
    img = Image.fromarray(np.zeros((16, 16, 3), np.uint8))
    exif = Image.Exif()
    gps = exif.get_ifd(0x8825)
    for k, v in gps_fields.items():
        gps[k] = v
    if serial is not None:
        exif.get_ifd(0x8769)[0xA431] = serial
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({1: "N", 2: (47.0, 30.0, 0.0), 3: "E", 4: (8.0, 15.0, 0.0)}, (47.5, 8.25)),
        ({1: "N", 2: (10.0, 0.0, 0.0), 3: "W", 4: (10.0, 0.0, 0.0)}, (10.0, -10.0)),  # equal, but with refs
        ({1: "\x00", 2: (1.0, 20.0, 1.0), 3: "\x00", 4: (1.0, 20.0, 1.0)}, None),  # placeholder: no refs, lat == lon
        ({1: "", 2: (3.0, 0.0, 0.0), 3: "", 4: (3.0, 0.0, 0.0)}, None),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, None),  # 0, 0
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (8.0, 0.0, 0.0)}, None),  # out of range
        ({1: "N", 2: (47.0, 0.0, 0.0)}, None),  # no longitude
    ],
)
def test_placeholder_gps_is_dropped(fields: dict[int, Any], expected: tuple[float, float] | None) -> None:
    e = decode_image(_exif_jpeg(fields)).exif
    got = None if e.gps_lat is None else (e.gps_lat, e.gps_lon)
    if expected is None:
        assert got is None and e.gps_lon is None
    else:
        assert got == pytest.approx(expected)


def test_camera_serial_is_read() -> None:
    assert decode_image(_exif_jpeg({}, serial="H500-0042")).exif.serial == "H500-0042"
    assert decode_image(_exif_jpeg({})).exif.serial is None


@pytest.mark.skipif(not CT.is_dir(), reason="shared camera-trap images not present")
def test_shared_placeholder_gps_files() -> None:
    """The SY cameras write 1deg 20' 1" for both latitude and longitude with empty references; the Bushnell 0, 0."""
    for name in ("2021-05-28_SYFR0041_deer.JPG", "B012_2021-05-27_human.jpg", "2021-12-07_12080069_rabbit.JPG"):
        e = decode_image((CT / "animl_southwest" / name).read_bytes(), 640).exif
        assert e.gps_lat is None and e.gps_lon is None, name
        assert e.make  # the rest of the EXIF is still read
