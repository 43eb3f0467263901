"""Image error metrics shared by the bake report, `neumat compare` and the viewer's error view:
HDR-FLIP (NVIDIA's flip-evaluator), PSNR of the displayed images, relative MSE, and the display
exposure that puts an image's log-average luminance at mid grey.

The flip module ends the whole process on inputs it rejects (NaN, negative values, mismatched
shapes, an empty exposure range), so every input is checked here first and bad ones raise."""

import math

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.color import luminance, srgb_encode
from neumat.renderer.images.io import tonemap

DISPLAY_KEY = 0.18  # display_exposure maps the log-average luminance to this
RELATIVE_MSE_EPS = 0.01  # relative MSE = (y - t)^2 / (t^2 + eps)


def check_image(name: str, image: np.ndarray, shape: tuple | None = None) -> np.ndarray:
    """HxWx3 float32, finite and non-negative, of `shape` when given; else ValueError naming it."""
    image = np.ascontiguousarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"{name}: expected an HxWx3 image, got shape {image.shape}")
    if shape is not None and image.shape != shape:
        raise ValueError(f"{name}: shape {image.shape} != reference {shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError(f"{name}: has non-finite pixels")
    if image.min() < 0:
        raise ValueError(f"{name}: has negative pixels (min {image.min():.3g}); HDR-FLIP needs values >= 0")
    return image


def _flip_module():
    try:
        import flip_evaluator as flip
    except ImportError:
        raise NeumatError("FLIP is missing: install it with pip install flip-evaluator==1.7") from None
    return flip


def flip_error(reference: np.ndarray, test: np.ndarray, magma: bool = True) -> tuple[np.ndarray, float]:
    """HDR-FLIP of linear float32 HxWx3 images: (error map, mean). The map is magma-coloured HxWx3 in
    [0, 1], or the per-pixel error HxW with magma=False.

    Both images are scaled so the reference's peak luminance is 1: FLIP picks its exposure range
    from the reference, so a common scale leaves the result unchanged, and it keeps an almost black
    reference from an empty exposure range (another exit). An all-black reference is compared at
    exposure 0."""
    flip = _flip_module()
    reference = check_image("reference", reference)
    test = check_image("test", test, reference.shape)
    peak = float(luminance(reference).max())
    params = {}
    if peak > 0:
        scale = np.float32(1.0 / peak)
        reference, test = reference * scale, test * scale
    else:
        params = {"startExposure": 0.0, "stopExposure": 0.0}
    error_map, mean, _ = flip.evaluate(reference, test, "HDR", applyMagma=magma, parameters=params)
    error_map = np.asarray(error_map, np.float32)
    if not magma and error_map.ndim == 3:
        error_map = error_map[..., 0]
    return error_map, float(mean)


def ldr_flip_error(reference: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, float]:
    """LDR-FLIP of two display images (HxWx3, sRGB-encoded values in [0, 1]): (magma map, mean).
    Much cheaper than HDR-FLIP: the viewer uses it on what the screen shows."""
    flip = _flip_module()
    reference = np.clip(check_image("reference", reference), 0.0, 1.0)
    test = np.clip(check_image("test", test, reference.shape), 0.0, 1.0)
    error_map, mean, _ = flip.evaluate(reference, test, "LDR", applyMagma=True)
    return np.asarray(error_map, np.float32), float(mean)


def display_exposure(reference: np.ndarray) -> float:
    """Exposure (stops) mapping the log-average luminance to DISPLAY_KEY, in half stops."""
    y = luminance(reference)
    y = y[y > 0]
    if y.size == 0:
        return 0.0
    key = math.exp(float(np.mean(np.log(y.astype(np.float64) + 1e-8))))
    return float(np.clip(round(2 * math.log2(DISPLAY_KEY / key)) / 2, -16, 16))


def squared_display_error(reference: np.ndarray, test: np.ndarray, exposure: float = 0.0) -> np.ndarray:
    """Per-pixel squared error of the displayed images (exposure, ACES, sRGB), averaged over RGB, HxW."""
    a = srgb_encode(tonemap(reference, exposure)).astype(np.float64)
    b = srgb_encode(tonemap(test, exposure)).astype(np.float64)
    return np.mean((a - b) ** 2, axis=-1)


def psnr_from_mse(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def psnr(reference: np.ndarray, test: np.ndarray, exposure: float = 0.0) -> float:
    """PSNR in dB of the displayed images (exposure, ACES, sRGB, values in [0, 1]); inf when equal."""
    return psnr_from_mse(float(np.mean(squared_display_error(reference, test, exposure))))


def relative_squared_error(reference: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Per-pixel relative squared error of linear images, (y - t)^2 / (t^2 + eps) averaged over RGB, HxW."""
    t = np.asarray(reference, np.float64)
    d = np.asarray(test, np.float64) - t
    return np.mean(d * d / (t * t + RELATIVE_MSE_EPS), axis=-1)
