"""Pixel-level tests of the image engine: each operation on small synthetic images, the codec, the limits."""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

import pytest
from PIL import Image, ImageCms, ImageOps

from airflow_provider_ci.emulator.imaging import ImageInfo, ProcessingError, image_info, process

RED = (255, 0, 0)
WHITE = (255, 255, 255)
ORIENTATION = 0x0112
MAKE = 0x010F


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def marked(size: tuple[int, int] = (40, 20), at: tuple[int, int] = (3, 1), **options: Any) -> bytes:
    """A white PNG with one red pixel, near the top-left corner by default."""
    image = Image.new("RGB", size, WHITE)
    image.putpixel(at, RED)
    return encode(image, **options)


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple)
    return value


def red_pixels(data: bytes) -> list[tuple[int, int]]:
    image = decode(data).convert("RGB")
    return [(x, y) for y in range(image.height) for x in range(image.width) if pixel(image, (x, y)) == RED]


def exif(**tags: object) -> Image.Exif:
    result = Image.Exif()
    for name, value in tags.items():
        result[{"orientation": ORIENTATION, "make": MAKE}[name]] = value
    return result


def noisy_jpeg(quality: int, **options: Any) -> bytes:
    """A 64x64 JPEG of seeded random noise: deterministic, and its size is sensitive to quality."""
    noise = Image.frombytes("RGB", (64, 64), random.Random(7).randbytes(64 * 64 * 3))
    return encode(noise, "JPEG", quality=quality, **options)


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` but holds no pixel data (a decompression bomb's header)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def error_code(data: bytes, rule: str = "imageMogr2") -> str:
    with pytest.raises(ProcessingError) as caught:
        process(data, rule)
    return caught.value.code


# --- rotate, flip, auto-orient -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("degrees", "size", "position"),
    [
        (0, (40, 20), (3, 1)),
        (90, (20, 40), (18, 3)),  # clockwise: (x, y) -> (H-1-y, x)
        (180, (40, 20), (36, 18)),
        (270, (20, 40), (1, 36)),
        (360, (40, 20), (3, 1)),
    ],
)
def test_rotate_quarter_turns_move_the_marked_pixel_clockwise(
    degrees: int, size: tuple[int, int], position: tuple[int, int]
) -> None:
    result = process(marked(), f"imageMogr2/rotate/{degrees}")
    assert (result.info.width, result.info.height) == size
    assert red_pixels(result.data) == [position]


def test_rotate_other_angles_expand_the_canvas_with_white_or_transparent_corners() -> None:
    rgb = process(marked(), "imageMogr2/rotate/45")
    assert 43 <= rgb.info.width == rgb.info.height <= 44  # (40 + 20) * cos 45° = 42.4, plus resampling margin
    assert pixel(decode(rgb.data).convert("RGB"), (0, 0)) == WHITE

    rgba = process(encode(Image.new("RGBA", (40, 20), (0, 0, 255, 255))), "imageMogr2/rotate/45")
    pixels = decode(rgba.data)
    assert pixels.mode == "RGBA"
    assert pixel(pixels, (0, 0))[3] == 0
    assert pixel(pixels, (21, 21)) == (0, 0, 255, 255)


@pytest.mark.parametrize(("direction", "position"), [("vertical", (3, 18)), ("horizontal", (36, 1))])
def test_flip_mirrors_the_marked_pixel(direction: str, position: tuple[int, int]) -> None:
    result = process(marked(), f"imageMogr2/flip/{direction}")
    assert (result.info.width, result.info.height) == (40, 20)
    assert red_pixels(result.data) == [position]


def test_auto_orient_applies_orientation_6_and_removes_the_tag() -> None:
    source = marked(exif=exif(orientation=6, make="emulator"))
    assert image_info(source).orientation == 6

    result = process(source, "imageMogr2/auto-orient")

    assert (result.info.width, result.info.height, result.info.orientation) == (20, 40, 0)
    assert red_pixels(result.data) == [(18, 3)]  # orientation 6 = turn 90° clockwise to display
    assert dict(decode(result.data).getexif()) == {MAKE: "emulator"}  # the rest of the EXIF stays


@pytest.mark.parametrize("orientation", range(1, 9))
def test_auto_orient_agrees_with_pillow_for_every_orientation(orientation: int) -> None:
    source = marked(exif=exif(orientation=orientation))
    expected = ImageOps.exif_transpose(decode(source))
    assert red_pixels(process(source, "imageMogr2/auto-orient").data) == red_pixels(encode(expected))


def test_without_auto_orient_the_orientation_tag_is_kept() -> None:
    result = process(marked(exif=exif(orientation=6)), "imageMogr2/rotate/90")
    assert result.info.orientation == 6


# --- thumbnail ---------------------------------------------------------------------------------------------

THUMBNAILS = [
    # (geometry, expected size) for a 40x30 source; halves round up
    ("!50p", (20, 15)),
    ("!25p", (10, 8)),  # 7.5 -> 8
    ("!200p", (80, 60)),
    ("!1p", (1, 1)),  # never below 1 px
    ("!50px", (20, 30)),
    ("!x50p", (40, 15)),
    ("20x", (20, 15)),
    ("30x", (30, 23)),  # 22.5 -> 23
    ("x15", (20, 15)),
    ("x45", (60, 45)),
    ("20x20", (20, 15)),  # width limits
    ("100x60", (80, 60)),  # height limits; enlarges
    ("20x20>", (20, 15)),
    ("100x100>", (40, 30)),  # already inside: unchanged
    ("100x60<", (80, 60)),
    ("20x20<", (40, 30)),  # larger than the box: unchanged
    ("30x20<", (40, 30)),  # one side already larger: unchanged
    ("20x20!", (20, 20)),
    ("50x10!", (50, 10)),
    ("!20x20r", (27, 20)),  # covers 20x20: height limits, 26.67 -> 27
    ("!60x20r", (60, 45)),
    ("300@", (20, 15)),
    ("1199@", (39, 29)),  # each side rounded down: 39 * 29 = 1131 <= 1199
    ("4800@", (80, 60)),
]


@pytest.mark.parametrize(("geometry", "size"), THUMBNAILS)
def test_thumbnail_sizes(geometry: str, size: tuple[int, int]) -> None:
    source = encode(Image.new("RGB", (40, 30), (10, 120, 200)))
    result = process(source, f"imageMogr2/thumbnail/{geometry}")
    assert (result.info.width, result.info.height) == size
    assert decode(result.data).size == size


def test_thumbnail_size_arguments_clamp_to_10000() -> None:
    result = process(encode(Image.new("RGB", (100, 1))), "imageMogr2/thumbnail/20000x")
    assert (result.info.width, result.info.height) == (10000, 100)


def test_thumbnail_beyond_the_resolution_limit_fails_before_allocating() -> None:
    source = encode(Image.new("RGB", (6000, 1)))
    assert error_code(source, "imageMogr2/thumbnail/!1000p") == "ImageResolutionExceed"

    ignored = process(source, "imageMogr2/thumbnail/!1000p/format/png/ignore-error/1")
    assert ignored.data == source
    assert ignored.info == image_info(source)


# --- crop --------------------------------------------------------------------------------------------------

TILE_COLOURS = {
    gravity: (30 * index, 250 - 25 * index, 128)
    for index, gravity in enumerate(
        ("northwest", "north", "northeast", "west", "center", "east", "southwest", "south", "southeast")
    )
}


def tiles() -> bytes:
    """30x30: a 3x3 grid of 10x10 tiles, each a distinct colour named after its gravity."""
    image = Image.new("RGB", (30, 30))
    for index, colour in enumerate(TILE_COLOURS.values()):
        column, row = index % 3, index // 3
        image.paste(colour, (10 * column, 10 * row, 10 * column + 10, 10 * row + 10))
    return encode(image)


@pytest.mark.parametrize("gravity", TILE_COLOURS)
def test_crop_with_gravity_keeps_the_matching_tile(gravity: str) -> None:
    result = process(tiles(), f"imageMogr2/crop/10x10/gravity/{gravity}")
    assert decode(result.data).getcolors() == [(100, TILE_COLOURS[gravity])]


def test_crop_defaults_to_northwest() -> None:
    assert decode(process(tiles(), "imageMogr2/crop/10x10").data).getcolors() == [(100, TILE_COLOURS["northwest"])]


@pytest.mark.parametrize(
    ("geometry", "size"), [("20x", (20, 30)), ("x20", (30, 20)), ("100x100", (30, 30)), ("5x100", (5, 30))]
)
def test_crop_sizes_missing_or_oversized_sides_keep_the_whole_side(geometry: str, size: tuple[int, int]) -> None:
    assert decode(process(tiles(), f"imageMogr2/crop/{geometry}").data).size == size


def test_crop_center_with_an_odd_spare_pixel_rounds_the_offset_down() -> None:
    result = process(marked((11, 11), at=(3, 3)), "imageMogr2/crop/4x4/gravity/center")  # spare 7 -> offset 3
    assert red_pixels(result.data) == [(0, 0)]


# --- format, alpha, quality, metadata ----------------------------------------------------------------------

SIGNATURES = {"jpg": b"\xff\xd8\xff", "png": b"\x89PNG\r\n\x1a\n", "gif": b"GIF8", "bmp": b"BM"}


@pytest.mark.parametrize(
    ("name", "fmt"), [("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"), ("gif", "GIF"), ("bmp", "BMP")]
)
def test_format_changes_the_encoding(name: str, fmt: str) -> None:
    result = process(noisy_jpeg(80), f"imageMogr2/format/{name}")
    if name == "webp":
        assert (result.data[:4], result.data[8:12]) == (b"RIFF", b"WEBP")
    else:
        assert result.data.startswith(SIGNATURES[name])
    assert (result.info.format, decode(result.data).format) == (fmt, fmt)


def test_output_format_defaults_to_the_input_and_the_last_format_wins() -> None:
    assert process(marked(), "imageMogr2/flip/vertical").info.format == "PNG"
    assert process(marked(), "imageMogr2/format/png/format/jpg").info.format == "JPEG"


@pytest.mark.parametrize(
    ("name", "keeps_alpha"), [("png", True), ("webp", True), ("gif", True), ("jpg", False), ("bmp", False)]
)
def test_alpha_is_kept_where_the_format_allows_and_flattened_on_white_elsewhere(name: str, keeps_alpha: bool) -> None:
    image = Image.new("RGBA", (8, 8), (0, 0, 255, 255))
    image.paste((0, 0, 0, 0), (0, 0, 4, 8))  # transparent left half
    output = decode(process(encode(image), f"imageMogr2/format/{name}").data).convert("RGBA")
    *colour, alpha = pixel(output, (1, 1))
    if keeps_alpha:
        assert alpha == 0
    else:
        assert alpha == 255
        assert min(colour) >= 250  # white, give or take JPEG noise
    assert pixel(output, (6, 6))[2] > 230  # the opaque blue half stays blue


@pytest.mark.parametrize("quality", [1, 10, 25, 50, 75, 90, 100])
def test_jpeg_quality_is_estimated_from_the_quantisation_tables(quality: int) -> None:
    assert image_info(noisy_jpeg(quality)).quality == quality


@pytest.mark.parametrize(
    ("rule", "quality"),
    [
        ("imageMogr2", 90),  # a JPEG keeps its quality
        ("imageMogr2/quality/50", 50),
        ("imageMogr2/quality/95", 90),  # min(source, Q)
        ("imageMogr2/quality/95!", 95),  # forced
        ("imageMogr2/rquality/50", 45),  # 50 % of 90
        ("imageMogr2/lquality/95", 95),  # raised to the floor
        ("imageMogr2/lquality/50", 90),
        ("imageMogr2/quality/95!/quality/40", 40),  # the last quality operation wins
    ],
)
def test_quality_operations(rule: str, quality: int) -> None:
    assert process(noisy_jpeg(90), rule).info.quality == quality


def test_lower_quality_gives_a_smaller_jpeg() -> None:
    source = noisy_jpeg(90)
    assert len(process(source, "imageMogr2/quality/30").data) < 0.6 * len(process(source, "imageMogr2").data)


def test_quality_of_non_jpeg_sources_and_webp_outputs() -> None:
    png = marked()
    assert image_info(png).quality == 100
    assert process(png, "imageMogr2/format/jpg").info.quality == 90  # default for a source without quality
    assert process(png, "imageMogr2/format/jpg/quality/70").info.quality == 70
    assert process(png, "imageMogr2/format/webp/quality/70").info.quality == 70  # the encoder quality


def metadata_source() -> bytes:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return noisy_jpeg(85, exif=exif(orientation=3, make="emulator"), icc_profile=icc)


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_without_strip_exif_and_icc_are_preserved(fmt: str) -> None:
    result = process(metadata_source(), f"imageMogr2/format/{fmt}")
    output = decode(result.data)
    assert output.getexif()[MAKE] == "emulator"
    assert result.info.orientation == 3
    assert output.info.get("icc_profile")


@pytest.mark.parametrize("fmt", ["jpg", "png", "webp"])
def test_strip_removes_exif_and_icc(fmt: str) -> None:
    result = process(metadata_source(), f"imageMogr2/format/{fmt}/strip")
    output = decode(result.data)
    assert dict(output.getexif()) == {}
    assert result.info.orientation == 0
    assert not output.info.get("icc_profile")


def test_interlace_makes_a_progressive_jpeg() -> None:
    assert "progressive" not in decode(process(noisy_jpeg(80), "imageMogr2/interlace/0").data).info
    assert decode(process(noisy_jpeg(80), "imageMogr2/interlace/1").data).info.get("progressive")


def test_chained_rule_composes_in_order() -> None:
    image = Image.new("RGB", (80, 40), WHITE)
    image.paste(RED, (0, 0, 8, 8))  # top-left block
    source = encode(image, exif=exif(make="emulator"))

    result = process(source, "imageMogr2/rotate/90/thumbnail/!50p/format/jpg/quality/60/strip")

    assert result.info == ImageInfo("JPEG", 20, 40, 60, result.info.ave, 0)
    output = decode(result.data).convert("RGB")
    r, g, b = pixel(output, (18, 2))  # rotated to the top-right corner, then halved
    assert r > 200
    assert max(g, b) < 80
    assert all(channel > 230 for channel in pixel(output, (2, 37)))
    assert dict(decode(result.data).getexif()) == {}


# --- image_info and inputs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP"])
def test_image_info_of_each_format(fmt: str) -> None:
    info = image_info(
        encode(Image.new("RGB", (7, 5), (200, 72, 71)), fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    )
    assert (info.format, info.width, info.height, info.orientation) == (fmt, 7, 5, 0)
    if fmt != "JPEG":
        assert (info.quality, info.ave) == (100, "0xc84847")


def test_ave_flattens_transparency_on_white() -> None:
    half = Image.new("RGBA", (2, 1), (0, 0, 0, 0))
    half.putpixel((1, 0), (0, 0, 0, 255))
    assert image_info(encode(half)).ave == "0x808080"  # mean of white and black, half up


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (6, 6), colour) for colour in (RED, (0, 0, 255))]
    source = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert getattr(decode(source), "n_frames", 1) == 2

    result = process(source, "imageMogr2/flip/vertical")

    assert result.info.ave == "0xff0000"
    assert getattr(decode(result.data), "n_frames", 1) == 1


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image",
        marked()[:60],  # truncated inside the pixel data
        noisy_jpeg(80)[:400],
        encode(Image.new("RGB", (4, 4)), "TIFF"),  # a real image, not an accepted format
    ],
)
def test_non_images_and_truncated_images_are_invalid(data: bytes) -> None:
    with pytest.raises(ProcessingError) as caught:
        image_info(data)
    assert caught.value.code == "InvalidImageFormat"
    assert error_code(data) == "InvalidImageFormat"


def test_input_over_32_mib_is_rejected_before_decoding() -> None:
    assert error_code(b"\0" * (32 * 1024 * 1024 + 1)) == "EntityTooLarge"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("size", [(60000, 1), (1, 60000), (16000, 16000), (30000, 20000)])
def test_input_resolution_is_checked_from_the_header(size: tuple[int, int]) -> None:
    # sides over 50000; 256 Mpx over 250 Mpx; 600 Mpx, which Pillow itself refuses to open
    with pytest.raises(ProcessingError) as caught:
        image_info(png_header(*size))
    assert caught.value.code == "ImageResolutionExceed"


def test_webp_output_is_limited_to_16383_px() -> None:
    source = encode(Image.new("RGB", (16384, 1)))
    assert error_code(source, "imageMogr2/format/webp") == "ImageResolutionExceed"
    assert process(source, "imageMogr2/format/webp/ignore-error/1").data == source
