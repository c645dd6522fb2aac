"""Pixels as people see them, without torch: the web app's thumbnails and the embedder read photos the same way."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION = 0x0112


def to_rgb(image: Image.Image) -> Image.Image:
    """The photo as a person sees it, in 8-bit RGB: EXIF orientation applied, 16-bit values scaled
    (not clipped to white), transparency laid on white (not black)."""
    if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
        image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image).astype(np.float64)
        full_scale = 65535.0 if image.mode.startswith("I;16") or values.max(initial=0) > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")
