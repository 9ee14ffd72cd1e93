"""Image engine of the emulator: the ``imageMogr2`` subset of reference ci_api.md §7, on Pillow.

The job runner calls ``image_info``, ``validate_rule`` and ``process`` concurrently; they share no mutable
state. A rule is ``imageMogr2`` followed by ``/<op>`` or ``/<op>/<arg>`` segments. Pixel operations run in
rule order; output settings (format, quality, strip, interlace, ignore-error) may appear anywhere and the
last occurrence wins. Nothing is ignored silently: every segment is either applied or rejected.

Supported syntax (W, H, A are positive integers; P is a percentage 1–1000)::

    rotate/<0-360>           clockwise; the canvas grows to fit; uncovered corners are white (transparent
                             when the image has alpha); multiples of 90 are exact transposes
    auto-orient              apply the EXIF Orientation (1-8), then delete the tag
    flip/vertical            mirror top/bottom            flip/horizontal   mirror left/right
    thumbnail/!<P>p          both sides to P %            thumbnail/!<P>px  width to P %
    thumbnail/!x<P>p         height to P %                thumbnail/<W>x    width W, height proportional
    thumbnail/x<H>           height H, width proportional
    thumbnail/<W>x<H>        largest proportional size inside W x H (enlarges too)
    thumbnail/<W>x<H>>       the same, only if the image is larger than the box (shrink only)
    thumbnail/<W>x<H><       the same, only if the image is smaller than the box (enlarge only)
    thumbnail/<W>x<H>!       exactly W x H, aspect ratio ignored
    thumbnail/!<W>x<H>r      smallest proportional size covering W x H
    thumbnail/<A>@           largest proportional size of at most A pixels (each side rounded down)
    crop/<W>x<H>, <W>x, x<H> keep a W x H region (a missing side keeps the whole side; a side larger than
                             the image is cut to the image)
    crop/.../gravity/<g>     where the region sits: northwest (default), north, northeast, west, center,
                             east, southwest, south, southeast
    format/<f>               jpg (or jpeg), png, webp, gif, bmp
    quality/<0-100>          JPEG/WebP quality min(source quality, Q); quality/<Q>! forces Q (the quality
                             operations are accepted but have no effect on PNG, GIF and BMP output)
    rquality/<1-100>         Q % of the source quality       lquality/<1-100>  at least Q
    strip                    drop EXIF and the ICC profile
    interlace/<0|1>          progressive JPEG (no effect on other formats)
    ignore-error/<0|1>       1: when the result breaks a size limit, return the source unchanged

Error codes (``ProcessingError.code``):

- ``InvalidArgument``: the rule is malformed (no ``imageMogr2`` head, empty segment, unknown operation,
  missing or out-of-range argument, ``gravity`` not after a ``crop``).
- ``UnsupportedOperation``: real CI syntax this emulator does not implement (``blur``, ``cut``, ``scrop``,
  ``iradius``, ... the ``yjpeg``/``heif``/``heic``/``avif``/``tpg`` formats, ``|`` pipelines).
- ``InvalidImageFormat``: the input is not a decodable JPEG, PNG, WebP, GIF or BMP (or is truncated).
- ``ImageResolutionExceed`` (the §6 code): input, or any intermediate result, over 50000 px per side or
  250 Mpx; WebP output over 16383 px per side.
- ``EntityTooLarge``: input or output over 32 MiB.

Decisions where the reference is silent or UNCONFIRMED:

- Rounding: a proportional side is ``round(side * target / source)`` with halves rounded up, and never
  below 1 px; the constrained side is exact. Size arguments above 10000 are clamped to 10000 (§6).
- ``crop`` defaults to ``northwest``, the default of the Qiniu imageMogr2 syntax CI's is derived from;
  ``center``/``north``/... place the region at ``floor(spare / 2)``, so an odd spare pixel is cut from the
  right/bottom. ``gravity`` binds to the most recent pixel operation, which must be a ``crop``.
- Quality: JPEG quality is the IJG quality whose scaled standard luminance table is closest to the file's
  (exact for libjpeg/Pillow encoders); every other input reports 100 (the WebP quantiser is not mapped
  back). Without a quality operation a JPEG source keeps its quality and other sources encode at 90.
  The result's info reports the encoder quality for WebP output.
- Pixels: the first frame is used (GIF/WebP animations become still images); images are handled as RGB,
  or RGBA when they have alpha, which PNG, WebP and GIF keep; JPEG and BMP (Pillow writes no BMP alpha)
  are flattened on white. ``Ave`` is the mean colour after that same flattening.
- Metadata: without ``strip``, EXIF and ICC are copied to JPEG, PNG and WebP (GIF and BMP cannot carry
  them); other metadata (XMP, text chunks) is not copied.
- Pillow's own decompression-bomb guard rejects images above ~179 Mpx inside ``Image.open``; importing
  this module raises its threshold to the service limit so the header check in ``_open`` decides.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from PIL import Image, ImageStat
from PIL.JpegImagePlugin import JpegImageFile

_MAX_BYTES = 32 * 1024 * 1024
_MAX_SIDE = 50_000
_MAX_PIXELS = 250_000_000
_MAX_WEBP_SIDE = 16_383
_MAX_SIZE_ARG = 10_000
_DEFAULT_QUALITY = 90
_WHITE = (255, 255, 255)
_ORIENTATION = 0x0112

if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < _MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = _MAX_PIXELS

_INPUT_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
_OUTPUT_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "bmp": "BMP"}
_METADATA_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})
_NOT_EMULATED_FORMATS = frozenset({"yjpeg", "heif", "heic", "avif", "tpg"})
_NOT_EMULATED_OPS = frozenset(
    ("blur", "bright", "contrast", "cut", "grayscale", "iradius", "pad", "rradius", "scrop", "sharpen", "size-limit")
)
_LIMIT_CODES = frozenset({"ImageResolutionExceed", "EntityTooLarge"})


class ProcessingError(Exception):
    """A job-ending problem: the job becomes Failed with this ``code`` and ``message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ImageInfo:
    format: str  # "JPEG", "PNG", "WEBP", "GIF", "BMP"
    width: int
    height: int
    quality: int  # estimated JPEG quality; 100 for lossless formats
    ave: str  # average colour, "0xRRGGBB"
    orientation: int  # EXIF orientation, 0 when absent


@dataclass(frozen=True)
class ProcessedImage:
    data: bytes
    info: ImageInfo


def image_info(data: bytes) -> ImageInfo:
    """Describe an encoded image; raises ProcessingError if ``data`` is not an image."""
    return _load(data)[1]


def validate_rule(rule: str) -> None:
    """Raise ProcessingError(code, message) when ``rule`` is not a supported imageMogr2 rule."""
    _parse(rule)


def process(data: bytes, rule: str) -> ProcessedImage:
    """Apply ``rule`` (e.g. ``imageMogr2/rotate/90/format/png``) to the encoded image ``data``."""
    plan = _parse(rule)
    canvas, source = _load(data)
    quality = plan.quality(source.quality) if plan.quality else _default_quality(source)
    try:
        for step in plan.steps:
            step(canvas)
        output = _encode(canvas, plan.format or source.format, quality, plan)
    except ProcessingError as exc:
        if plan.ignore_error and exc.code in _LIMIT_CODES:
            return ProcessedImage(data=data, info=source)
        raise
    info = image_info(output)
    return ProcessedImage(data=output, info=replace(info, quality=quality) if info.format == "WEBP" else info)


# --- decoding and description -------------------------------------------------------------------------


@dataclass
class _Canvas:
    """The image being processed and the metadata that travels with it."""

    image: Image.Image  # always RGB or RGBA
    exif: Image.Exif
    icc: bytes | None


def _load(data: bytes) -> tuple[_Canvas, ImageInfo]:
    """Decode the first frame of ``data`` after the limit checks, and describe it."""
    img = _open(data)
    try:
        img.load()
    except (OSError, ValueError) as exc:
        raise ProcessingError("InvalidImageFormat", f"cannot decode the {img.format} image: {exc}") from None
    exif = img.getexif()
    pixels = img if img.mode in ("RGB", "RGBA") else _to_rgb(img)
    r, g, b = (int(mean + 0.5) for mean in ImageStat.Stat(_flatten(pixels)).mean)
    info = ImageInfo(
        format="JPEG" if isinstance(img, JpegImageFile) else str(img.format),  # also MPO, JPEG from cameras
        width=pixels.width,
        height=pixels.height,
        quality=_jpeg_quality(img.quantization) if isinstance(img, JpegImageFile) else 100,
        ave=f"0x{r:02x}{g:02x}{b:02x}",
        orientation=int(exif.get(_ORIENTATION, 0)),
    )
    canvas = _Canvas(image=pixels, exif=exif, icc=img.info.get("icc_profile"))
    pixels.info = {}  # metadata travels in the canvas only: some encoders fall back to ``info`` (PNG: ICC)
    return canvas, info


def _open(data: bytes) -> Image.Image:
    """Identify ``data`` from its header and enforce the §6 input limits before any pixel is decoded."""
    if len(data) > _MAX_BYTES:
        raise ProcessingError("EntityTooLarge", f"input is {len(data)} bytes; the limit is {_MAX_BYTES}")
    try:
        img = Image.open(io.BytesIO(data), formats=_INPUT_FORMATS)
    except Image.DecompressionBombError as exc:  # so large that Pillow refuses even to describe it
        raise ProcessingError("ImageResolutionExceed", f"input image: {exc}") from None
    except (OSError, ValueError):
        raise ProcessingError("InvalidImageFormat", "input is not a JPEG, PNG, WebP, GIF or BMP image") from None
    _check_resolution(img.width, img.height, "input image")
    return img


def _check_resolution(width: int, height: int, what: str) -> None:
    if max(width, height) > _MAX_SIDE or width * height > _MAX_PIXELS:
        raise ProcessingError(
            "ImageResolutionExceed",
            f"{what} would be {width}x{height}; the limits are {_MAX_SIDE} px per side and {_MAX_PIXELS} pixels",
        )


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB, or RGBA when ``img`` has alpha, so that operations and encoders meet two modes only."""
    has_alpha = img.mode in ("LA", "La", "PA", "RGBa") or "transparency" in img.info  # or palette/tRNS
    return img.convert("RGBA" if has_alpha else "RGB")


def _flatten(image: Image.Image) -> Image.Image:
    """Composite RGBA on white (what a viewer of a JPEG would see); RGB passes through."""
    if image.mode != "RGBA":
        return image
    return Image.alpha_composite(Image.new("RGBA", image.size, (*_WHITE, 255)), image).convert("RGB")


# IJG standard luminance quantisation table (JPEG Annex K.1), natural order like Pillow's ``quantization``.
# fmt: off
_IJG_LUMINANCE = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
# fmt: on


def _ijg_table(quality: int) -> tuple[int, ...]:
    """The luminance table libjpeg's ``jpeg_set_quality(quality, force_baseline=TRUE)`` writes."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(max((base * scale + 50) // 100, 1), 255) for base in _IJG_LUMINANCE)


_IJG_TABLES = {quality: _ijg_table(quality) for quality in range(1, 101)}


def _jpeg_quality(tables: dict[int, list[int]]) -> int:
    """The IJG quality whose luminance table (the lowest-numbered one) is nearest, by sum of differences."""
    luminance = tables[min(tables)]
    return min(_IJG_TABLES, key=lambda q: sum(abs(a - b) for a, b in zip(_IJG_TABLES[q], luminance, strict=False)))


def _default_quality(source: ImageInfo) -> int:
    return source.quality if source.format == "JPEG" else _DEFAULT_QUALITY


# --- encoding -------------------------------------------------------------------------------------------


def _encode(canvas: _Canvas, fmt: str, quality: int, plan: _Plan) -> bytes:
    """Encode ``canvas`` as ``fmt``, with quality/interlace/metadata as the plan says, within §6 limits."""
    image = canvas.image
    options: dict[str, object] = {}
    if fmt in ("JPEG", "BMP"):
        image = _flatten(image)
    if fmt == "JPEG":
        options.update(quality=quality, progressive=plan.interlace)
    elif fmt == "WEBP":
        if max(image.size) > _MAX_WEBP_SIDE:
            raise ProcessingError(
                "ImageResolutionExceed", f"WebP output is {image.width}x{image.height}; max {_MAX_WEBP_SIDE} px"
            )
        options.update(quality=quality)
    if fmt in _METADATA_FORMATS and not plan.strip:
        if canvas.exif:
            options["exif"] = canvas.exif
        if canvas.icc:
            options["icc_profile"] = canvas.icc
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    if buffer.tell() > _MAX_BYTES:
        raise ProcessingError("EntityTooLarge", f"output is {buffer.tell()} bytes; the limit is {_MAX_BYTES}")
    return buffer.getvalue()


# --- rule parsing ---------------------------------------------------------------------------------------

_Step = Callable[[_Canvas], None]


@dataclass
class _Plan:
    """A parsed rule: pixel steps in rule order, then output settings (last occurrence wins)."""

    steps: list[_Step] = field(default_factory=list)
    format: str | None = None
    quality: Callable[[int], int] | None = None  # source quality -> output quality
    strip: bool = False
    interlace: bool = False
    ignore_error: bool = False


def _parse(rule: str) -> _Plan:
    """Parse ``rule`` with the ``_FLAGS``/``_OPS`` tables; never touches an image."""
    head, *segments = rule.split("/")
    if head != "imageMogr2":
        raise ProcessingError("InvalidArgument", f"rule must start with 'imageMogr2/', got {rule[:40]!r}")
    if "|" in rule:
        raise ProcessingError("UnsupportedOperation", "pipelines of several processors ('|') are not emulated")
    plan = _Plan()
    tokens = iter(segments)
    for name in tokens:
        if name in _FLAGS:
            _FLAGS[name](plan)
        elif name in _OPS:
            arg = next(tokens, "")
            if not arg:
                raise ProcessingError("InvalidArgument", f"{name}: missing argument")
            _OPS[name](plan, arg)
        elif not name:
            raise ProcessingError("InvalidArgument", f"empty segment ('//' or a trailing '/') in {rule[:80]!r}")
        elif name in _NOT_EMULATED_OPS:
            raise ProcessingError("UnsupportedOperation", f"{name}: operation is not emulated")
        else:
            raise ProcessingError("InvalidArgument", f"unknown operation {name!r} in rule {rule[:80]!r}")
    return plan


def _invalid(op: str, arg: str, problem: str) -> ProcessingError:
    return ProcessingError("InvalidArgument", f"{op}/{arg}: {problem}")


def _int(op: str, arg: str, low: int, high: int | None = None, text: str | None = None) -> int:
    """``text`` (default: all of ``arg``) as an integer in [low, high]; errors quote ``op/arg``."""
    text = arg if text is None else text
    value = int(text) if re.fullmatch(r"[0-9]{1,9}", text) else -1  # bounded: no absurd digit strings
    if value < low or (high is not None and value > high):
        raise _invalid(
            op, arg, f"expected an integer from {low} to {high}" if high is not None else f"expected >= {low}"
        )
    return value


def _size_arg(op: str, arg: str, text: str) -> int:
    """A size argument: at least 1, clamped to 10000 as the service does (§6)."""
    return min(_int(op, arg, 1, text=text), _MAX_SIZE_ARG)


def _round_ratio(value: int, numerator: int, denominator: int) -> int:
    """``value * numerator / denominator`` rounded half up, at least 1 (a side never vanishes)."""
    return max(1, (2 * value * numerator + denominator) // (2 * denominator))


# rotate ----------------------------------------------------------------------------------------------------

_CLOCKWISE = {
    90: Image.Transpose.ROTATE_270,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_90,
}  # Pillow's names count counter-clockwise


def _parse_rotate(plan: _Plan, arg: str) -> None:
    degrees = _int("rotate", arg, 0, 360) % 360
    if degrees:
        plan.steps.append(partial(_rotate, degrees=degrees))


def _rotate(canvas: _Canvas, degrees: int) -> None:
    if degrees in _CLOCKWISE:
        _transpose(canvas, _CLOCKWISE[degrees])
        return
    image = canvas.image
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    _check_resolution(
        math.ceil(image.width * cos + image.height * sin),
        math.ceil(image.width * sin + image.height * cos),
        f"rotate/{degrees} result",
    )
    fill = (*_WHITE, 0) if image.mode == "RGBA" else _WHITE
    canvas.image = image.rotate(-degrees, Image.Resampling.BICUBIC, expand=True, fillcolor=fill)


# auto-orient and flip --------------------------------------------------------------------------------------

_ORIENT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _auto_orient(canvas: _Canvas) -> None:
    method = _ORIENT.get(canvas.exif.pop(_ORIENTATION, 1))
    if method is not None:
        _transpose(canvas, method)


_FLIPS = {"vertical": Image.Transpose.FLIP_TOP_BOTTOM, "horizontal": Image.Transpose.FLIP_LEFT_RIGHT}


def _parse_flip(plan: _Plan, arg: str) -> None:
    if arg not in _FLIPS:
        raise _invalid("flip", arg, "expected 'vertical' or 'horizontal'")
    plan.steps.append(partial(_transpose, method=_FLIPS[arg]))


def _transpose(canvas: _Canvas, method: Image.Transpose) -> None:
    canvas.image = canvas.image.transpose(method)


# thumbnail -------------------------------------------------------------------------------------------------

_Size = tuple[int, int]


def _fit(width: int, height: int, box_width: int, box_height: int) -> _Size:
    """Largest proportional size inside the box: the limiting side is exact, the other rounded."""
    if box_width * height <= box_height * width:
        return box_width, _round_ratio(height, box_width, width)
    return _round_ratio(width, box_height, height), box_height


def _cover(width: int, height: int, box_width: int, box_height: int) -> _Size:
    """Smallest proportional size covering the box."""
    if box_width * height >= box_height * width:
        return box_width, _round_ratio(height, box_width, width)
    return _round_ratio(width, box_height, height), box_height


def _area(width: int, height: int, area: int) -> _Size:
    """Each side rounded down, so width x height never exceeds ``area``: sqrt(area*w/h) x sqrt(area*h/w)."""
    return max(1, math.isqrt(area * width // height)), max(1, math.isqrt(area * height // width))


def _percent(arg: str, text: str) -> int:
    return _int("thumbnail", arg, 1, 1000, text)


def _side(arg: str, text: str) -> int:
    return _size_arg("thumbnail", arg, text)


def _pixel_count(arg: str, text: str) -> int:
    return _int("thumbnail", arg, 1, text=text)


_N = "([0-9]+)"

# (geometry pattern, parser of its numbers, new size from (width, height, *numbers)), for re.fullmatch
_THUMBNAILS: tuple[tuple[str, Callable[[str, str], int], Callable[..., _Size]], ...] = (
    (f"!{_N}p", _percent, lambda w, h, p: (_round_ratio(w, p, 100), _round_ratio(h, p, 100))),
    (f"!{_N}px", _percent, lambda w, h, p: (_round_ratio(w, p, 100), h)),
    (f"!x{_N}p", _percent, lambda w, h, p: (w, _round_ratio(h, p, 100))),
    (f"{_N}x", _side, lambda w, h, bw: (bw, _round_ratio(h, bw, w))),
    (f"x{_N}", _side, lambda w, h, bh: (_round_ratio(w, bh, h), bh)),
    (f"{_N}x{_N}", _side, _fit),
    (f"{_N}x{_N}>", _side, lambda w, h, bw, bh: _fit(w, h, bw, bh) if w > bw or h > bh else (w, h)),
    (f"{_N}x{_N}<", _side, lambda w, h, bw, bh: _fit(w, h, bw, bh) if w < bw and h < bh else (w, h)),
    (f"{_N}x{_N}!", _side, lambda w, h, bw, bh: (bw, bh)),
    (f"!{_N}x{_N}r", _side, _cover),
    (f"{_N}@", _pixel_count, _area),
)


def _parse_thumbnail(plan: _Plan, arg: str) -> None:
    for pattern, number, geometry in _THUMBNAILS:
        match = re.fullmatch(pattern, arg)
        if match:
            numbers = [number(arg, text) for text in match.groups()]
            plan.steps.append(partial(_thumbnail, geometry=geometry, numbers=numbers, arg=arg))
            return
    raise _invalid("thumbnail", arg, "unrecognised geometry (see the syntax table in the module docstring)")


def _thumbnail(canvas: _Canvas, geometry: Callable[..., _Size], numbers: list[int], arg: str) -> None:
    size = geometry(*canvas.image.size, *numbers)
    _check_resolution(*size, f"thumbnail/{arg} result")
    if size != canvas.image.size:
        canvas.image = canvas.image.resize(size, Image.Resampling.LANCZOS)


# crop and gravity ------------------------------------------------------------------------------------------

# gravity -> (column, row) in a 3x3 grid; the offset is spare * column // 2 (resp. row).
_GRAVITIES = {
    name: (index % 3, index // 3)
    for index, name in enumerate(
        ("northwest", "north", "northeast", "west", "center", "east", "southwest", "south", "southeast")
    )
}


@dataclass(frozen=True)
class _Crop:
    """A crop step; a dataclass rather than a closure so that a following ``gravity`` can amend it."""

    width: int | None
    height: int | None
    gravity: str | None = None  # None: not given, northwest

    def __call__(self, canvas: _Canvas) -> None:
        image = canvas.image
        width, height = min(self.width or image.width, image.width), min(self.height or image.height, image.height)
        column, row = _GRAVITIES[self.gravity or "northwest"]
        left, top = (image.width - width) * column // 2, (image.height - height) * row // 2
        canvas.image = image.crop((left, top, left + width, top + height))


def _parse_crop(plan: _Plan, arg: str) -> None:
    match = re.fullmatch(r"([0-9]+)?x([0-9]+)?", arg)
    if not match or match.groups() == (None, None):
        raise _invalid("crop", arg, "expected <W>x<H>, <W>x or x<H>")
    width, height = (None if group is None else _size_arg("crop", arg, group) for group in match.groups())
    plan.steps.append(_Crop(width=width, height=height))


def _parse_gravity(plan: _Plan, arg: str) -> None:
    crop = plan.steps[-1] if plan.steps else None
    if not isinstance(crop, _Crop):
        raise _invalid("gravity", arg, "must follow a crop (crop/<W>x<H>/gravity/<gravity>)")
    if crop.gravity is not None:
        raise _invalid("gravity", arg, "the crop already has a gravity")
    if arg.lower() not in _GRAVITIES:
        raise _invalid("gravity", arg, f"expected one of {', '.join(_GRAVITIES)}")
    plan.steps[-1] = replace(crop, gravity=arg.lower())


# output settings -------------------------------------------------------------------------------------------


def _parse_format(plan: _Plan, arg: str) -> None:
    name = arg.lower()
    if name in _NOT_EMULATED_FORMATS:
        raise ProcessingError("UnsupportedOperation", f"format/{arg}: output format is not emulated")
    if name not in _OUTPUT_FORMATS:
        raise _invalid("format", arg, f"expected one of {', '.join(_OUTPUT_FORMATS)}")
    plan.format = _OUTPUT_FORMATS[name]


def _parse_quality(plan: _Plan, arg: str) -> None:
    forced = arg.endswith("!")
    quality = _int("quality", arg, 0, 100, text=arg.removesuffix("!"))
    plan.quality = (lambda _source: quality) if forced else (lambda source: min(source, quality))


def _parse_rquality(plan: _Plan, arg: str) -> None:
    percent = _int("rquality", arg, 1, 100)
    plan.quality = lambda source: _round_ratio(source, percent, 100)


def _parse_lquality(plan: _Plan, arg: str) -> None:
    floor = _int("lquality", arg, 1, 100)
    plan.quality = lambda source: max(source, floor)


def _set_strip(plan: _Plan) -> None:
    plan.strip = True


def _parse_interlace(plan: _Plan, arg: str) -> None:
    plan.interlace = _int("interlace", arg, 0, 1) == 1


def _parse_ignore_error(plan: _Plan, arg: str) -> None:
    plan.ignore_error = _int("ignore-error", arg, 0, 1) == 1


_FLAGS: dict[str, Callable[[_Plan], None]] = {
    "auto-orient": lambda plan: plan.steps.append(_auto_orient),
    "strip": _set_strip,
}
_OPS: dict[str, Callable[[_Plan, str], None]] = {
    "rotate": _parse_rotate,
    "flip": _parse_flip,
    "thumbnail": _parse_thumbnail,
    "crop": _parse_crop,
    "gravity": _parse_gravity,
    "format": _parse_format,
    "quality": _parse_quality,
    "rquality": _parse_rquality,
    "lquality": _parse_lquality,
    "interlace": _parse_interlace,
    "ignore-error": _parse_ignore_error,
}
