"""A sample photo for demos and tests: orientation shows at a glance, so a rotation is visible."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def sample_jpeg(width: int = 640, height: int = 480) -> bytes:
    """A JPEG with a gradient sky, a sun, a field and a red marker in the top-left corner."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=(40 + y * 100 // height, 120 + y * 80 // height, 220 - y * 60 // height))
    draw.ellipse([width * 0.6, height * 0.15, width * 0.8, height * 0.15 + width * 0.2], fill=(255, 210, 60))
    draw.rectangle([0, height * 0.75, width, height], fill=(60, 140, 70))
    draw.rectangle([10, 10, 70, 40], fill=(220, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=88)
    return buffer.getvalue()
