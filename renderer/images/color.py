"""Colour: Rec. 709 luminance and the sRGB transfer curve, used by images, textures, lights and training."""

import numpy as np

# Rec. 709 / sRGB primaries: Y = LUMINANCE . rgb for linear RGB (the path tracer's working space).
LUMINANCE = (0.2126, 0.7152, 0.0722)


def luminance(rgb) -> np.ndarray:
    """Y of linear RGB over the last axis ([..., 3] -> [...]); a plain 3-sequence gives a float."""
    rgb = np.asarray(rgb)
    return rgb[..., 0] * LUMINANCE[0] + rgb[..., 1] * LUMINANCE[1] + rgb[..., 2] * LUMINANCE[2]


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0,1] -> sRGB-encoded [0,1] (IEC 61966-2-1 piecewise curve)."""
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0,1] -> linear [0,1]: texture maps and PNGs as the renderer needs them."""
    c = np.clip(encoded, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))
