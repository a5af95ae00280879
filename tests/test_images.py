"""Tests for umsn_cli.images: every odd kind of photo is read upright and written back
the way it came, and every broken file is an ImageError naming it."""

from __future__ import annotations

import io
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import png
import pytest
import tifffile
from PIL import Image, ImageCms
from skimage import data as skdata

from umsn_cli.errors import ImageError, UsageError
from umsn_cli.images import (
    LoadedImage,
    from_array,
    from_pil,
    output_suffix,
    read_image,
    save_label_png,
    save_rgb8,
    to_array,
    write_image,
)
from umsn_cli.images import atomic_write as images_atomic_write


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """A small, non-square, real photo (48×64) so rotations show in the shape."""
    return np.ascontiguousarray(skdata.astronaut()[::8, ::8][:48])


@pytest.fixture(scope="module")
def srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def rand16(*shape: int, seed: int = 0) -> np.ndarray:
    """16-bit samples, nearly all of them impossible to hold in 8 bits."""
    return np.random.default_rng(seed).integers(0, 65536, shape, dtype=np.uint16)


def write_png16(path: Path, pixels: np.ndarray, *, extra: list[tuple[bytes, bytes]] = ()) -> None:
    height, width = pixels.shape[:2]
    planes = 1 if pixels.ndim == 2 else pixels.shape[2]
    writer = png.Writer(width, height, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16)
    buffer = io.BytesIO()
    writer.write(buffer, pixels.reshape(height, -1))
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    with path.open("wb") as fh:
        png.write_chunks(fh, chunks[:1] + list(extra) + chunks[1:])


def read_png16(path: Path) -> np.ndarray:
    width, height, rows, info = png.Reader(bytes=path.read_bytes()).read()
    return np.array(list(rows), dtype=np.uint16).reshape(height, width, info["planes"])


def as16(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 65535).astype(np.uint16)


def as8(values: np.ndarray) -> np.ndarray:
    return np.rint(values * 255).astype(np.uint8)


def exif_with_orientation(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims a huge size, without the pixels (a decompression bomb stand-in)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0"))
        + chunk(b"IEND", b"")
    )


# --- orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize(("orientation", "turn"), [(6, -1), (8, 1)])
def test_exif_orientation_is_applied_to_png(tmp_path, photo, orientation, turn):
    path = tmp_path / "turned.png"
    Image.fromarray(photo).save(path, exif=exif_with_orientation(orientation))
    loaded = read_image(path)
    assert loaded.rgb.shape == (64, 48, 3)
    np.testing.assert_array_equal(as8(loaded.rgb), np.rot90(photo, turn))


def test_exif_orientation_is_applied_to_jpeg_and_not_written_back(tmp_path, photo):
    path = tmp_path / "turned.jpg"
    Image.fromarray(photo).save(path, quality=95, subsampling=0, exif=exif_with_orientation(6))
    loaded = read_image(path)
    assert loaded.rgb.shape == (64, 48, 3)
    error = np.abs(as8(loaded.rgb).astype(int) - np.rot90(photo, -1)).mean()
    assert error < 4
    out = tmp_path / "out.jpg"
    write_image(out, loaded.rgb, loaded)
    with Image.open(out) as written:
        assert written.size == (48, 64)
        assert written.getexif().get(0x0112) in (None, 1)


def test_exif_orientation_is_applied_to_16bit_png(tmp_path):
    pixels = rand16(4, 6, 3)
    exif = exif_with_orientation(8).tobytes()[6:]  # eXIf holds no "Exif\0\0" prefix
    write_png16(tmp_path / "turned.png", pixels, extra=[(b"eXIf", exif)])
    loaded = read_image(tmp_path / "turned.png")
    np.testing.assert_array_equal(as16(loaded.rgb), np.rot90(pixels, 1))


# --- grey, alpha, depth -------------------------------------------------------------------


def test_grey_8bit_round_trip_stays_single_channel(tmp_path, photo):
    grey = photo[..., 0]
    Image.fromarray(grey).save(tmp_path / "grey.png")
    loaded = read_image(tmp_path / "grey.png")
    assert (loaded.mode, loaded.bit_depth, loaded.alpha) == ("L", 8, None)
    assert loaded.rgb.shape == (*grey.shape, 3)
    write_image(tmp_path / "out.png", loaded.rgb, loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), grey)


def test_grey_16bit_png_round_trip_is_exact(tmp_path):
    grey = rand16(5, 7)
    Image.fromarray(grey).save(tmp_path / "grey16.png")  # Pillow mode I;16
    loaded = read_image(tmp_path / "grey16.png")
    assert (loaded.mode, loaded.bit_depth) == ("L", 16)
    np.testing.assert_array_equal(to_array(loaded.rgb, loaded), grey)
    write_image(tmp_path / "out.png", loaded.rgb, loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode.startswith("I;16")
        np.testing.assert_array_equal(np.asarray(written), grey)


@pytest.mark.parametrize("planes", [3, 4, 2])
def test_16bit_png_round_trip_is_exact(tmp_path, planes):
    pixels = rand16(5, 7, planes)
    write_png16(tmp_path / "in.png", pixels)
    loaded = read_image(tmp_path / "in.png")
    assert loaded.bit_depth == 16
    assert loaded.mode == ("L" if planes == 2 else "RGB")
    assert (loaded.alpha is not None) == (planes in (2, 4))
    np.testing.assert_array_equal(to_array(loaded.rgb, loaded), pixels)
    write_image(tmp_path / "out.png", loaded.rgb, loaded)
    np.testing.assert_array_equal(read_png16(tmp_path / "out.png"), pixels)


def test_16bit_png_transparent_colour_becomes_alpha(tmp_path):
    pixels = rand16(3, 4, 3)
    key = tuple(int(v) for v in pixels[1, 2])
    write_png16(tmp_path / "keyed.png", pixels, extra=[(b"tRNS", struct.pack(">3H", *key))])
    loaded = read_image(tmp_path / "keyed.png")
    assert loaded.alpha is not None
    assert loaded.alpha[1, 2] == 0
    assert np.count_nonzero(loaded.alpha == 1) == 11


@pytest.mark.parametrize("planes", [3, 4, 1])
def test_16bit_tiff_round_trip_is_exact(tmp_path, planes):
    pixels = rand16(5, 7, planes)
    tifffile.imwrite(
        tmp_path / "in.tif",
        pixels if planes > 1 else pixels[..., 0],
        photometric="rgb" if planes > 1 else "minisblack",
        extrasamples=["unassalpha"] if planes == 4 else None,
    )
    loaded = read_image(tmp_path / "in.tif")
    assert (loaded.bit_depth, loaded.format) == (16, "TIFF")
    assert output_suffix(loaded, None) == ".tif"
    write_image(tmp_path / "out.tif", loaded.rgb, loaded)
    written = tifffile.imread(tmp_path / "out.tif")
    np.testing.assert_array_equal(written.reshape(pixels.shape), pixels)


def test_16bit_tiff_keeps_orientation_and_icc(tmp_path, srgb_icc):
    pixels = rand16(4, 6, 3)
    tifffile.imwrite(
        tmp_path / "in.tif",
        pixels,
        photometric="rgb",
        iccprofile=srgb_icc,
        extratags=[(0x0112, "H", 1, 6, True)],
    )
    loaded = read_image(tmp_path / "in.tif")
    np.testing.assert_array_equal(as16(loaded.rgb), np.rot90(pixels, -1))
    assert loaded.icc_profile == srgb_icc


def test_16bit_tiff_tifffile_cannot_decode_falls_back_to_pillow(tmp_path):
    # Without imagecodecs tifffile cannot undo LZW; Pillow still reads 16-bit grey in full.
    grey = rand16(5, 7)
    Image.fromarray(grey).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    loaded = read_image(tmp_path / "lzw.tif")
    assert (loaded.mode, loaded.bit_depth, loaded.warnings) == ("L", 16, [])
    np.testing.assert_array_equal(to_array(loaded.rgb, loaded), grey)


def test_multi_page_tiff_warns(tmp_path, photo):
    pages = [Image.fromarray(np.roll(photo, i, axis=0)) for i in range(3)]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    loaded = read_image(tmp_path / "pages.tif")
    np.testing.assert_array_equal(as8(loaded.rgb), photo)
    assert loaded.warnings == ["multi-page TIFF: only the first of its 3 pages is restored"]


def test_16bit_into_jpeg_is_written_at_8_bits(tmp_path):
    pixels = rand16(5, 7, 3)
    loaded = from_array(pixels)
    write_image(tmp_path / "out.jpg", loaded.rgb, loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert (written.mode, written.size) == ("RGB", (7, 5))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_kept_unchanged(tmp_path, photo, mode):
    rng = np.random.default_rng(3)
    alpha = rng.integers(0, 256, photo.shape[:2], dtype=np.uint8)
    colour = photo if mode == "RGBA" else photo[..., :1]
    Image.fromarray(np.dstack([colour, alpha])).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    assert loaded.mode == mode[:-1]
    np.testing.assert_array_equal(as8(loaded.alpha), alpha)
    restored = np.clip(loaded.rgb * 0.9, 0, 1)  # what a network might hand back
    write_image(tmp_path / "out.png", restored, loaded)
    with Image.open(tmp_path / "out.png") as written:
        assert written.mode == mode
        np.testing.assert_array_equal(np.asarray(written)[..., -1], alpha)


# --- CMYK, palette, 1-bit, GIF --------------------------------------------------------------


def test_cmyk_jpeg_is_read_as_rgb_and_written_back_as_cmyk(tmp_path, photo):
    fake_cmyk_icc = bytes(16) + b"CMYK" + bytes(108)
    Image.fromarray(photo).convert("CMYK").save(
        tmp_path / "in.jpg", quality=95, icc_profile=fake_cmyk_icc
    )
    loaded = read_image(tmp_path / "in.jpg")
    assert (loaded.mode, loaded.format, loaded.rgb.shape) == ("CMYK", "JPEG", (48, 64, 3))
    assert np.abs(as8(loaded.rgb).astype(int) - photo).mean() < 4
    for name, mode, icc in [
        ("out.jpg", "CMYK", fake_cmyk_icc),
        ("out.tif", "CMYK", fake_cmyk_icc),
        ("out.png", "RGB", None),  # a CMYK profile on RGB pixels would be invalid
    ]:
        write_image(tmp_path / name, loaded.rgb, loaded)
        with Image.open(tmp_path / name) as written:
            assert written.mode == mode
            assert written.info.get("icc_profile") == icc


def test_icc_profile_is_kept(tmp_path, photo, srgb_icc):
    Image.fromarray(photo).save(tmp_path / "in.png", icc_profile=srgb_icc)
    loaded = read_image(tmp_path / "in.png")
    assert loaded.icc_profile == srgb_icc
    for name in ["out.png", "out.jpg", "out.webp", "out.tif"]:
        write_image(tmp_path / name, loaded.rgb, loaded)
        with Image.open(tmp_path / name) as written:
            assert written.info.get("icc_profile") == srgb_icc, name
    sixteen = from_array(rand16(4, 5, 3))
    sixteen.icc_profile = srgb_icc
    write_image(tmp_path / "out16.png", sixteen.rgb, sixteen)
    with Image.open(tmp_path / "out16.png") as written:
        assert written.info.get("icc_profile") == srgb_icc


def test_jpeg_output_keeps_full_chroma_resolution(tmp_path, photo):
    loaded = from_array(photo)
    write_image(tmp_path / "out.jpg", loaded.rgb, loaded)
    with Image.open(tmp_path / "out.jpg") as written:
        assert written.layer[0][1:3] == written.layer[1][1:3] == (1, 1)  # 4:4:4


@pytest.mark.parametrize("transparent", [False, True])
def test_palette_becomes_rgb_or_rgba(tmp_path, photo, transparent):
    image = Image.fromarray(photo).quantize(16)
    index = np.asarray(image)
    options = {"transparency": int(index[0, 0])} if transparent else {}
    image.save(tmp_path / "in.png", **options)
    loaded = read_image(tmp_path / "in.png")
    palette = np.asarray(image.convert("RGB"))
    assert loaded.mode == "RGB"
    np.testing.assert_array_equal(as8(loaded.rgb), palette)
    assert (loaded.alpha is not None) == transparent
    if transparent:
        np.testing.assert_array_equal(loaded.alpha == 0, index == index[0, 0])


def test_one_bit_becomes_grey(tmp_path):
    bits = np.random.default_rng(1).integers(0, 2, (6, 9)).astype(bool)
    Image.fromarray(bits).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    assert (loaded.mode, loaded.bit_depth) == ("L", 8)
    np.testing.assert_array_equal(loaded.rgb[..., 0], bits.astype(np.float32))


def test_animated_gif_gives_first_frame_a_warning_and_png_output(tmp_path, photo):
    frames = [Image.fromarray(np.roll(photo, 5 * i, axis=1)).quantize(64) for i in range(3)]
    frames[0].save(tmp_path / "in.gif", save_all=True, append_images=frames[1:])
    loaded = read_image(tmp_path / "in.gif")
    assert loaded.format == "GIF"
    np.testing.assert_array_equal(as8(loaded.rgb), np.asarray(frames[0].convert("RGB")))
    assert any("animated GIF" in note and "first" in note for note in loaded.warnings)
    assert output_suffix(loaded, None) == ".png"


# --- broken and hostile files ---------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(40_000, 40_000), (10_000, 10_000)])
def test_decompression_bombs_are_refused(tmp_path, width, height):
    # 40000² is past Pillow's error threshold; 10000² only past its warning threshold.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(width, height))
    with pytest.raises(ImageError, match="pixel limit") as caught:
        read_image(path)
    assert str(path) in str(caught.value)


def _truncated(tmp_path: Path, photo: np.ndarray, fmt: str) -> Path:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d, p: _truncated(d, p, "JPEG"), "truncated or corrupt"),
        (lambda d, p: _truncated(d, p, "PNG"), "truncated or corrupt"),
        (lambda d, p: d / "notes.txt", "not an image file"),
        (lambda d, p: d / "empty.png", "empty file"),
        (lambda d, p: d / "missing.png", "no such file"),
        (lambda d, p: d, "is a directory"),
    ],
    ids=["cut-jpeg", "cut-png", "text", "empty", "missing", "directory"],
)
def test_unreadable_files_are_image_errors(tmp_path, photo, make, expected):
    (tmp_path / "notes.txt").write_text("not a photo\n")
    (tmp_path / "empty.png").write_bytes(b"")
    path = make(tmp_path, photo)
    with pytest.raises(ImageError, match=expected) as caught:
        read_image(path)
    message = str(caught.value)
    assert str(path) in message
    assert "\n" not in message


def test_truncated_16bit_png_is_an_image_error(tmp_path):
    write_png16(tmp_path / "full.png", rand16(40, 40, 3))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=r"cut\.png"):
        read_image(tmp_path / "cut.png")


# --- arrays and Pillow images ---------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(12, dtype=np.uint8).reshape(3, 4),
        rand16(3, 4, 3),
        np.random.default_rng(0).integers(0, 256, (3, 4, 4), dtype=np.uint8),
        np.linspace(0, 1, 36, dtype=np.float32).reshape(3, 4, 3),
    ],
    ids=["grey8", "rgb16", "rgba8", "float"],
)
def test_from_array_to_array_round_trip(array):
    loaded = from_array(array)
    assert loaded.rgb.dtype == np.float32
    assert loaded.rgb.shape == (3, 4, 3)
    back = to_array(loaded.rgb, loaded)
    assert back.dtype == array.dtype
    np.testing.assert_allclose(back, array, atol=1e-6)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((3, 4), dtype=np.int64), "dtype int64"),
        (np.zeros((3, 4, 2), dtype=np.uint8), "shape"),
        (np.full((3, 4), 255.0), r"\[0, 1\]"),
        (np.full((3, 4), np.nan), r"\[0, 1\]"),
    ],
)
def test_from_array_rejects_what_is_not_an_image(array, match):
    with pytest.raises(UsageError, match=match):
        from_array(array)


def test_from_pil_handles_palette_with_transparency(photo):
    image = Image.fromarray(photo).quantize(8)
    image.info["transparency"] = 0
    loaded = from_pil(image)
    assert (loaded.mode, loaded.format, loaded.path) == ("RGB", None, None)
    assert loaded.alpha is not None
    assert output_suffix(loaded, None) == ".png"


def test_to_array_grey_uses_luma():
    loaded = from_array(np.zeros((2, 2), dtype=np.uint8))
    rgb = np.zeros((2, 2, 3), dtype=np.float32)
    rgb[..., 1] = 1.0
    np.testing.assert_array_equal(to_array(rgb, loaded), np.full((2, 2), 150, np.uint8))


# --- output suffix --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ext", "expected"),
    [("png", ".png"), (".PNG", ".png"), ("jpg", ".jpg"), ("jpeg", ".jpeg"), ("tif", ".tif")],
)
def test_output_suffix_normalises_ext(ext, expected):
    assert output_suffix(from_array(np.zeros((2, 2), np.uint8)), ext) == expected


@pytest.mark.parametrize("ext", ["gif", "heic", "", "."])
def test_output_suffix_rejects_unusable_ext(ext):
    with pytest.raises(UsageError, match="--ext"):
        output_suffix(from_array(np.zeros((2, 2), np.uint8)), ext)


def test_output_suffix_follows_the_input(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "a.JPEG", "JPEG")
    Image.fromarray(photo).save(tmp_path / "b.jpg", "PNG")  # misnamed: really a PNG
    Image.fromarray(photo).save(tmp_path / "c.webp")
    assert output_suffix(read_image(tmp_path / "a.JPEG"), None) == ".JPEG"
    assert output_suffix(read_image(tmp_path / "b.jpg"), None) == ".png"
    assert output_suffix(read_image(tmp_path / "c.webp"), None) == ".webp"
    assert output_suffix(from_array(photo), None) == ".png"


# --- atomic writes --------------------------------------------------------------------------


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def test_write_refuses_to_overwrite_unless_asked(tmp_path, photo):
    loaded = from_array(photo)
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(ImageError, match="--overwrite"):
        write_image(target, loaded.rgb, loaded)
    assert target.read_bytes() == b"old"
    write_image(target, loaded.rgb, loaded, overwrite=True)
    with Image.open(target) as written:
        np.testing.assert_array_equal(np.asarray(written), photo)
    assert _leftovers(tmp_path) == []


def test_failed_write_leaves_no_partial_output(tmp_path):
    too_wide = from_array(np.zeros((1, 17_000, 3), np.uint8))  # past WebP's 16383-pixel limit
    target = tmp_path / "out.webp"
    with pytest.raises(ImageError, match=r"out\.webp"):
        write_image(target, too_wide.rgb, too_wide)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(ImageError):
        write_image(target, too_wide.rgb, too_wide, overwrite=True)
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_write_creates_folders_and_uses_normal_permissions(tmp_path, photo):
    loaded = from_array(photo)
    target = tmp_path / "deep" / "er" / "out.png"
    write_image(target, loaded.rgb, loaded)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


def test_write_rejects_unknown_suffix(tmp_path, photo):
    loaded = from_array(photo)
    with pytest.raises(UsageError, match=r"cannot write '\.gif'"):
        write_image(tmp_path / "out.gif", loaded.rgb, loaded)


def test_write_float_results_are_rounded_and_clipped(tmp_path):
    loaded = from_array(np.zeros((1, 3, 3), np.uint8))
    rgb = np.array([[[-0.5] * 3, [0.5 / 255 + 1e-4] * 3, [1.5] * 3]], np.float32)
    write_image(tmp_path / "out.png", rgb, loaded)
    with Image.open(tmp_path / "out.png") as written:
        np.testing.assert_array_equal(np.asarray(written)[0, :, 0], [0, 1, 255])


def test_save_label_png_and_save_rgb8(tmp_path, photo):
    labels = np.random.default_rng(2).integers(0, 11, (6, 5), dtype=np.uint8)
    save_label_png(tmp_path / "labels.png", labels)
    with Image.open(tmp_path / "labels.png") as written:
        assert written.mode == "L"
        np.testing.assert_array_equal(np.asarray(written), labels)
    with pytest.raises(ImageError, match="--overwrite"):
        save_label_png(tmp_path / "labels.png", labels)
    with pytest.raises(UsageError):
        save_label_png(tmp_path / "labels.png", labels.astype(np.int32), overwrite=True)
    save_rgb8(tmp_path / "overlay.png", photo)
    with Image.open(tmp_path / "overlay.png") as written:
        np.testing.assert_array_equal(np.asarray(written), photo)
    assert _leftovers(tmp_path) == []


def test_loaded_image_is_float_rgb_in_unit_range(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "in.png")
    loaded = read_image(tmp_path / "in.png")
    assert isinstance(loaded, LoadedImage)
    assert loaded.rgb.dtype == np.float32
    assert loaded.rgb.flags.c_contiguous
    assert loaded.rgb.min() >= 0.0
    assert loaded.rgb.max() <= 1.0
    assert (loaded.path, loaded.format, loaded.warnings) == (tmp_path / "in.png", "PNG", [])


def _noisy_photo(width: int = 1024, height: int = 768) -> np.ndarray:
    """A photo whose JPEG (about 100 kB at 1024×768) is larger than the free space left."""
    from skimage import data

    return np.asarray(Image.fromarray(data.astronaut()).resize((width, height)))


@pytest.fixture
def full_disk(tmp_path):
    """A 300 kB tmpfs mostly filled, as in the bug report; skipped where mount is refused."""
    import shutil
    import subprocess

    mount = tmp_path / "full"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                          capture_output=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * 240_000)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_is_an_error_and_leaves_no_truncated_jpeg(full_disk):
    loaded = from_array(_noisy_photo())
    target = full_disk / "out.jpg"
    with pytest.raises(ImageError, match="free space"):
        write_image(target, loaded.rgb, loaded)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]


def test_a_short_write_that_raises_nothing_is_still_caught(tmp_path, monkeypatch):
    """The length check catches a writer that drops bytes silently (what the encoder did)."""
    import builtins

    import umsn_cli.files as files_module

    class Lossy:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            return self.fh.write(data[: len(data) // 2])

        def __getattr__(self, name):
            return getattr(self.fh, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

    def lossy_open(path, mode="r", *args, **kwargs):
        fh = builtins.open(path, mode, *args, **kwargs)  # noqa: SIM115 - returned open
        return Lossy(fh) if mode == "wb" else fh

    monkeypatch.setattr(files_module, "open", lossy_open, raising=False)
    loaded = from_array(_noisy_photo(64, 48))
    with pytest.raises(ImageError, match="shorter than its data"):
        write_image(tmp_path / "out.jpg", loaded.rgb, loaded)
    assert list(tmp_path.iterdir()) == []


def test_a_file_that_appears_while_writing_is_never_replaced(tmp_path, monkeypatch):
    """Two processes into one folder: the second finds the name taken at the last moment."""
    loaded = from_array(np.zeros((8, 8, 3), np.uint8))
    target = tmp_path / "out.png"

    def racing_encode(fh):
        target.write_bytes(b"the other process's output")  # lands during our encode
        fh.write(b"ours")

    with pytest.raises(ImageError, match="already exists"):
        images_atomic_write(target, racing_encode, overwrite=False)
    assert target.read_bytes() == b"the other process's output"
    assert _leftovers(tmp_path) == []
    images_atomic_write(target, lambda fh: fh.write(b"ours"), overwrite=True)
    assert target.read_bytes() == b"ours"
    write_image(tmp_path / "fresh.png", loaded.rgb, loaded)
    assert _leftovers(tmp_path) == []


def test_many_writers_of_one_name_write_it_once(tmp_path):
    """30 threads race for one name without --overwrite: exactly one wins."""
    from concurrent.futures import ThreadPoolExecutor

    target = tmp_path / "out.bin"

    def attempt(i: int) -> bool:
        try:
            images_atomic_write(target, lambda fh: fh.write(str(i).encode()), overwrite=False)
            return True
        except ImageError:
            return False

    with ThreadPoolExecutor(8) as pool:
        wins = list(pool.map(attempt, range(30)))
    assert sum(wins) == 1
    assert target.read_bytes() == str(wins.index(True)).encode()
    assert _leftovers(tmp_path) == []


def test_quantise_rounds_and_clips_across_its_row_bands(monkeypatch):
    from umsn_cli.images import writing

    monkeypatch.setattr(writing, "_QUANTISE_BAND", 7)  # bands of 2 rows of 3×... values
    values = np.random.default_rng(0).uniform(-0.2, 1.2, (9, 3, 2)).astype(np.float32)
    expected = np.rint(np.clip(values, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(writing.quantise(values), expected)
    assert writing.quantise(values, 16).dtype == np.uint16
    assert np.array_equal(writing.quantise(values, 16), np.rint(np.clip(values, 0, 1) * 65535))
