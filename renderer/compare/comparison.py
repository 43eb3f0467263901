"""Comparing a test image against a reference: the numbers and pictures of `neumat compare`.

Metrics, for the whole image and per material (pixels grouped by the material-id AOV of the
reference render; "background" where a primary ray hit nothing):
- FLIP: HDR-FLIP (renderer/images/metrics.py), the mean of the per-pixel map over the pixels;
- PSNR (dB) of the displayed images (the report's exposure, ACES, sRGB);
- relative MSE of the linear images, (y - t)^2 / (t^2 + 0.01).
Every per-pixel quantity is computed once for the whole image and then averaged over each group,
so the pixel-weighted mean of the groups' values is the whole image's value (PSNR through its MSE).

Inputs are checked before the flip library sees them (it ends the process on bad input): images
of different sizes are an error; non-finite pixels are zeroed and negative ones clamped to 0, each
with a warning that says how many.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import to_display
from neumat.renderer.images.metrics import (display_exposure, flip_error, psnr_from_mse, relative_squared_error,
                                    squared_display_error)
from neumat.renderer.images.panels import enlarge, figure

BACKGROUND = "background"
CROP_FRACTION = 0.2  # the zoomed crop's side, as a fraction of the image's shorter side
CROP_ZOOM_PIXELS = 240  # the crop is enlarged to about this many pixels tall


@dataclass
class ErrorMaps:
    """Per-pixel errors of a test image against a reference, HxW each."""
    flip: np.ndarray
    flip_magma: np.ndarray  # HxWx3 in [0, 1]
    squared_display: np.ndarray
    relative_squared: np.ndarray
    exposure: float  # stops, for PSNR and the PNGs


@dataclass
class Checked:
    image: np.ndarray
    warnings: list[str] = field(default_factory=list)


def checked_image(name: str, image: np.ndarray) -> Checked:
    """An HxWx3 float32 copy with non-finite pixels zeroed and negative values clamped (with warnings)."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise NeumatError(f"{name}: expected an HxWx3 image, got shape {image.shape}")
    out = Checked(image.copy())
    bad = ~np.isfinite(out.image).all(axis=2)
    if bad.any():
        out.image[bad] = 0.0
        out.warnings.append(f"{name}: {int(bad.sum())} pixel(s) with non-finite values were zeroed")
    negative = (out.image < 0).any(axis=2)
    if negative.any():
        out.image = np.maximum(out.image, 0.0)
        out.warnings.append(f"{name}: {int(negative.sum())} pixel(s) with negative values were clamped to 0")
    return out


def check_same_size(reference: np.ndarray, test: np.ndarray, names: tuple[str, str]) -> None:
    if reference.shape != test.shape:
        (ha, wa), (hb, wb) = reference.shape[:2], test.shape[:2]
        raise NeumatError(f"the images differ in size: {names[0]} is {wa}x{ha}, {names[1]} is {wb}x{hb}")


def error_maps(reference: np.ndarray, test: np.ndarray, exposure: float | None = None) -> ErrorMaps:
    """Per-pixel errors of two checked images of the same size (exposure: the reference's
    display_exposure unless given)."""
    exposure = display_exposure(reference) if exposure is None else exposure
    # Two FLIP runs: the library gives either the values or its magma colouring, and it does not
    # export the colour map itself (about a second each at 800 x 450 on two cores).
    flip, _ = flip_error(reference, test, magma=False)
    magma, _ = flip_error(reference, test, magma=True)
    return ErrorMaps(flip, magma, squared_display_error(reference, test, exposure),
                     relative_squared_error(reference, test), exposure)


def _summary(maps: ErrorMaps, mask: np.ndarray | None) -> dict:
    pick = (lambda a: a) if mask is None else (lambda a: a[mask])
    mse = float(np.mean(pick(maps.squared_display)))
    return {"pixels": int(maps.flip.size if mask is None else mask.sum()),
            "flip": float(np.mean(pick(maps.flip), dtype=np.float64)),
            "psnr_db": psnr_from_mse(mse), "display_mse": mse,
            "relative_mse": float(np.mean(pick(maps.relative_squared)))}


def metrics(maps: ErrorMaps, material_ids: np.ndarray | None = None, material_names: list[str] | None = None
            ) -> dict:
    """{"image": summary, "materials": {name: summary}} with summary = pixels, flip, psnr_db,
    display_mse, relative_mse. Ids of -1 (or any id without a name) count as background; ids that
    share a name (one material on several objects) are one group."""
    out = {"image": _summary(maps, None), "materials": {}}
    if material_ids is None:
        return out
    ids = np.rint(np.asarray(material_ids)).astype(np.int64)
    names = list(material_names or [])
    label = np.array([BACKGROUND] + names, dtype=object)
    labels = label[np.where((ids >= 0) & (ids < len(names)), ids + 1, 0)]
    for name in dict.fromkeys(list(names) + [BACKGROUND]):
        mask = labels == name
        if mask.any():
            out["materials"][name] = _summary(maps, mask)
    return out


def worst_crop(flip: np.ndarray, fraction: float = CROP_FRACTION) -> tuple[int, int, int]:
    """(row, column, side) of the square window, side = fraction of the shorter image side, with
    the highest mean FLIP (windows on a half-side grid)."""
    h, w = flip.shape
    side = max(1, int(round(min(h, w) * fraction)))
    step = max(1, side // 2)
    best, where = -1.0, (0, 0)
    for y in range(0, max(h - side, 0) + 1, step):
        for x in range(0, max(w - side, 0) + 1, step):
            v = float(flip[y:y + side, x:x + side].mean())
            if v > best:
                best, where = v, (y, x)
    return where[0], where[1], side


def _frame(display: np.ndarray, crop: tuple[int, int, int], colour=(255, 210, 0)) -> np.ndarray:
    """A copy of a display image with the crop's outline drawn in."""
    out = display.copy()
    y, x, s = crop
    h, w = out.shape[:2]
    y1, x1 = min(y + s, h) - 1, min(x + s, w) - 1
    out[y, x:x1 + 1] = out[y1, x:x1 + 1] = colour
    out[y:y1 + 1, x] = out[y:y1 + 1, x1] = colour
    return out


def side_by_side(reference: np.ndarray, test: np.ndarray, maps: ErrorMaps, names: tuple[str, str], title: str,
                 subtitle: str = ""):
    """A PIL image: reference | test | FLIP map, and below them the worst-FLIP crop of each,
    enlarged (the crop is outlined in the top row)."""
    crop = worst_crop(maps.flip)
    y, x, s = crop
    flip_display = np.round(np.clip(maps.flip_magma, 0, 1) * 255).astype(np.uint8)
    panels = [to_display(reference, maps.exposure), to_display(test, maps.exposure), flip_display]
    zoom = max(1, math.ceil(CROP_ZOOM_PIXELS / s))
    captions = (names[0], names[1], f"FLIP (mean {float(maps.flip.mean()):.4f})")
    top = [(_frame(p, crop), c) for p, c in zip(panels, captions)]
    bottom = [(enlarge(p[y:y + s, x:x + s], zoom), f"{c.split(' (')[0]}, crop x{zoom}") for p, c in zip(panels, captions)]
    return figure([top, bottom], title, subtitle)
