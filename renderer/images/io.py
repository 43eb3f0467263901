"""Image files: EXR holds linear float32 RGB as rendered; PNG holds what a person should see.

PNG pixels are exposure-scaled, tonemapped by a named operator, then sRGB-encoded. Writes are
atomic (renderer/core/atomic_files.py): never a half-written image under the requested name.
"""

import os
import struct
import warnings
from pathlib import Path

import numpy as np

from neumat.renderer.core.atomic_files import atomic_output
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.color import srgb_decode, srgb_encode

IMAGE_EXTENSIONS = (".exr", ".png")  # what neumat writes
READ_EXTENSIONS = (*IMAGE_EXTENSIONS, ".jpg", ".jpeg")  # what it reads: artists' texture maps come as JPEG too
MAX_IMAGE_PIXELS = 16384 * 8192  # a 16k equirectangular map: 2 GiB as float32 RGBA


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
    """Fails early (before any rendering) on an unknown extension, a missing folder or a folder
    where the file should be."""
    path = Path(path)
    if path.suffix.lower() not in extensions:
        raise NeumatError(f"{path}: unknown image extension '{path.suffix}' (use {' or '.join(extensions)})")
    if path.is_dir():
        raise NeumatError(f"{path}: is a folder; give an image file name (e.g. {path / ('image' + extensions[0])})")
    if not path.parent.is_dir():
        raise NeumatError(f"{path}: the folder '{path.parent}' does not exist")
    if not os.access(path.parent, os.W_OK):
        raise NeumatError(f"{path}: the folder '{path.parent}' is not writable")
    return path


def write_png(path: str | Path, pixels) -> Path:
    """Writes display pixels (HxWx3 uint8, sRGB as shown, or a PIL image: figures) to a PNG,
    atomically; returns the path."""
    from PIL import Image

    path = check_output_path(path, (".png",))
    if not isinstance(pixels, Image.Image):
        pixels = Image.fromarray(np.ascontiguousarray(pixels, np.uint8), "RGB")
    with atomic_output(path) as tmp:
        pixels.save(tmp, format="PNG")
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


def _check_size(path: Path, width: int, height: int) -> None:
    """Before decoding: a header may claim any size (a 100000x100000 PNG is a few hundred bytes)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise NeumatError(f"{path}: the image claims {width}x{height} pixels, more than the "
                          f"{MAX_IMAGE_PIXELS:,} (16384x8192) neumat reads")


def _read_exr(path: Path) -> np.ndarray:
    import OpenEXR

    with OpenEXR.File(str(path), header_only=True) as f:
        (x0, y0), (x1, y1) = f.header()["dataWindow"]
    _check_size(path, int(x1) - int(x0) + 1, int(y1) - int(y0) + 1)
    with OpenEXR.File(str(path), separate_channels=True) as f:
        ch = {name: np.asarray(c.pixels, dtype=np.float32) for name, c in f.channels().items()}
    if all(c in ch for c in "RGB"):
        rgb = np.stack([ch["R"], ch["G"], ch["B"]], axis=2)
    elif "Y" in ch:
        rgb = np.repeat(ch["Y"][..., None], 3, axis=2)
    else:
        raise NeumatError(f"{path}: no R, G, B or Y channels (found {', '.join(sorted(ch)) or 'none'})")
    alpha = ch.get("A", np.ones(rgb.shape[:2], np.float32))[..., None]
    return np.concatenate([rgb, alpha], axis=2)


def _read_pillow(path: Path, srgb: bool) -> np.ndarray:
    """PNG (8 or 16 bit) and JPEG through Pillow."""
    from PIL import Image

    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":  # before Pillow's own, larger limit
        _check_size(path, *struct.unpack(">II", head[16:24]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # within our limit
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit greyscale: convert("RGB") would clip it
                grey = np.asarray(im, dtype=np.float64) / 65535.0
                px = np.repeat(grey[..., None], 3, axis=2)
                alpha = np.ones(grey.shape + (1,))
            else:
                px = np.asarray(im.convert("RGBA"), dtype=np.float64) / 255.0
                px, alpha = px[..., :3], px[..., 3:]
    if srgb:
        px = srgb_decode(px)
    return np.concatenate([px, alpha], axis=2).astype(np.float32)


def read_rgba(path: str | Path, srgb: bool = True) -> np.ndarray:
    """float32 HxWx4 (alpha 1 where the file has none) from .exr (linear, as stored), .png (8 or
    16 bit, colour or grey) or .jpg/.jpeg (sRGB-decoded when `srgb`, else the stored values in [0, 1]).

    Every image input goes through here: environment maps, the material image node, compare.
    Anything wrong with the file (missing, unknown type, more than MAX_IMAGE_PIXELS, a decoder's
    error of any kind) is one NeumatError naming it; pixel values are not judged here."""
    path = Path(path)
    if not path.is_file():
        raise NeumatError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in READ_EXTENSIONS:
        raise NeumatError(f"{path}: unknown image extension '{path.suffix}' (use .exr, .png or .jpg)")
    try:
        return _read_exr(path) if suffix == ".exr" else _read_pillow(path, srgb)
    except NeumatError:
        raise
    except MemoryError:
        raise NeumatError(f"{path}: not enough memory to read the image") from None
    except Exception as exc:  # decoders raise many types (OSError, ValueError, SyntaxError, zlib.error ...)
        raise NeumatError(f"{path}: cannot read the image ({type(exc).__name__}: {exc})") from None


def read_image(path: str | Path) -> np.ndarray:
    """Linear float32 HxWx3 from .exr (as stored) or .png/.jpg (sRGB-decoded): read_rgba without alpha."""
    return np.ascontiguousarray(read_rgba(path)[..., :3])
