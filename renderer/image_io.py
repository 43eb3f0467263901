"""Image files: EXR holds linear float32 RGB as rendered; PNG holds what a person should see.

PNG pixels are exposure-scaled, tonemapped by a named operator, then sRGB-encoded. Writes are
atomic (renderer/atomic_files.py): never a half-written image under the requested name.
"""

import os
from pathlib import Path

import numpy as np

from renderer.atomic_files import atomic_output
from renderer.errors import NeumatError

IMAGE_EXTENSIONS = (".exr", ".png")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0,1] -> sRGB-encoded [0,1] (IEC 61966-2-1 piecewise curve)."""
    c = np.clip(linear, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * np.power(c, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    c = np.clip(encoded, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, np.power((c + 0.055) / 1.055, 2.4))


def _aces(x: np.ndarray) -> np.ndarray:
    # Narkowicz 2015 fit of the ACES filmic reference curve (maps 0 -> 0, large -> ~1).
    return np.clip((x * (2.51 * x + 0.03)) / (x * (2.43 * x + 0.59) + 0.14), 0.0, 1.0)


TONEMAPPERS = {
    "clamp": lambda x: np.clip(x, 0.0, 1.0),
    "reinhard": lambda x: x / (1.0 + x),
    "aces": _aces,
}


def tonemap(linear: np.ndarray, exposure: float = 0.0, tonemapper: str = "aces") -> np.ndarray:
    """Display-referred [0,1] linear values: scale by 2^exposure, then apply `tonemapper`."""
    if tonemapper not in TONEMAPPERS:
        raise NeumatError(f"unknown tonemapper '{tonemapper}' (known: {', '.join(TONEMAPPERS)})")
    return TONEMAPPERS[tonemapper](np.maximum(linear, 0.0) * np.float32(2.0 ** exposure))


def to_display(linear: np.ndarray, exposure: float = 0.0, tonemapper: str = "aces") -> np.ndarray:
    """Linear HxWx3 -> sRGB uint8 HxWx3, as written to PNG and shown in the viewer."""
    encoded = srgb_encode(tonemap(linear, exposure, tonemapper))
    return np.round(encoded * 255.0).astype(np.uint8)


def check_output_path(path: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> Path:
    """Fails early (before any rendering) on an unknown extension or a missing folder."""
    path = Path(path)
    if path.suffix.lower() not in extensions:
        raise NeumatError(f"{path}: unknown image extension '{path.suffix}' (use {' or '.join(extensions)})")
    if not path.parent.is_dir():
        raise NeumatError(f"{path}: the folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK):
        raise NeumatError(f"{path}: the folder '{path.parent}' is not writable")
    return path


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 or HxWx4 image, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])


def write_image(path: str | Path, image: np.ndarray, exposure: float = 0.0, tonemapper: str = "aces") -> Path:
    """Writes linear RGB to .exr (as is) or .png (exposure, tonemapper, sRGB); returns the path."""
    import OpenEXR
    from PIL import Image

    path = check_output_path(path)
    rgb = _rgb(image)
    with atomic_output(path) as tmp:
        if path.suffix.lower() == ".exr":
            header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
            with OpenEXR.File(header, {"RGB": rgb}) as f:
                f.write(str(tmp))
        else:
            Image.fromarray(to_display(rgb, exposure, tonemapper), "RGB").save(tmp, format="PNG")
    return path


def read_image(path: str | Path) -> np.ndarray:
    """Linear float32 HxWx3 from .exr (as stored) or .png (sRGB-decoded)."""
    import OpenEXR
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise NeumatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".exr":
            with OpenEXR.File(str(path)) as f:
                channels = f.channels()
                if "RGB" in channels:
                    return _rgb(channels["RGB"].pixels)
                if "RGBA" in channels:
                    return _rgb(channels["RGBA"].pixels)
                if "Y" in channels:
                    y = np.asarray(channels["Y"].pixels, dtype=np.float32)
                    return np.repeat(y[..., None], 3, axis=2)
                raise NeumatError(f"{path}: no RGB, RGBA or Y channels (found {', '.join(channels)})")
        if suffix == ".png":
            with Image.open(path) as im:
                data = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            return srgb_decode(data).astype(np.float32)
    except (RuntimeError, OSError) as exc:
        raise NeumatError(f"{path}: cannot read the image ({exc})") from exc
    raise NeumatError(f"{path}: unknown image extension '{path.suffix}' (use .exr or .png)")
