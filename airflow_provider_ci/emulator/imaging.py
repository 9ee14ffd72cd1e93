"""Image processing for the emulator: the imageMogr2 subset of reference ci_api.md §7, on Pillow.

INTERFACE PLACEHOLDER: the real engine replaces the body of these functions; the names,
signatures and exception types are the contract the job runner relies on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass


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
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            rgb = img.convert("RGB").resize((1, 1))
            r, g, b = rgb.getpixel((0, 0))  # type: ignore[misc]
            return ImageInfo(
                format=img.format or "UNKNOWN",
                width=img.width,
                height=img.height,
                quality=100,
                ave=f"0x{r:02x}{g:02x}{b:02x}",
                orientation=int(img.getexif().get(0x0112, 0)),
            )
    except (UnidentifiedImageError, OSError) as exc:
        raise ProcessingError("InvalidImageFormat", f"input is not a supported image: {exc}") from None


def validate_rule(rule: str) -> None:
    """Raise ProcessingError(code, message) when ``rule`` is not a supported imageMogr2 rule."""
    if not rule.startswith("imageMogr2"):
        raise ProcessingError("InvalidArgument", f"unsupported process rule {rule!r}")


def process(data: bytes, rule: str) -> ProcessedImage:
    """Apply ``rule`` (e.g. ``imageMogr2/rotate/90/format/png``) to the encoded image ``data``."""
    validate_rule(rule)
    return ProcessedImage(data=data, info=image_info(data))
