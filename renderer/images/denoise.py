"""Denoising path-traced images with Intel Open Image Denoise (OIDN 2.5, through the `pyoidn`
binding from PyPI), for the viewer's denoised view and `neumat render --denoise`.

Why: a progressive path tracer on lavapipe reaches a few samples per pixel per second at the
viewer's resolution, and at that count the image is mostly noise; OIDN's pretrained filter turns
a 4-spp image into one that reads like a converged one (with some blur of fine texture), in tens
of milliseconds at the viewer's sizes on a CPU. The raw accumulation stays what every metric,
comparison and EXR file uses: a denoised image is for looking at.

What it feeds OIDN (its "RT" filter, `hdr` on):
- color: the linear Rec.709 beauty as rendered (HDR; non-finite or negative values set to 0);
- albedo: the path tracer's albedo AOV at the camera hit, averaged over the pixel's samples (0
  where the ray escaped), divided by its largest channel where that exceeds 1: a reference
  material's albedo() is a hemispherical reflectance in [0, 1], but a neural material's is pi
  times its BSDF at normal incidence, which a glossy coat takes far above 1 (up to 130 on the
  stage), and clipping would make every glossy object a white blank; scaled, it keeps its hue;
- normal: the world-space shading normal AOV at the camera hit, averaged over the samples (so
  shorter than 1 along silhouettes; 0 where nothing was hit), clipped to [-1, 1].
The guides come from the same few samples as the beauty, so they are noisy along edges (the
pixel jitter) and at textures finer than a pixel. How OIDN treats them (AUX_MODES):
- "prefilter": OIDN's own albedo and normal filters clean them first, then the beauty pass
  takes them as clean (`cleanAux`). Best on both test scenes, several times the time: the
  default of `neumat render --denoise`.
- "noisy": passed as they are to OIDN's model trained on noisy guides (`cleanAux` off); the cost
  of no guides and about their result: the viewer's mode.
- "clean": passed as clean without prefiltering. At a few samples per pixel no better than no
  guides (quality high) or worse (fast): it trusts their edge noise; for converged guides.
The measurements (the stage at 4 spp, the test scene at 2 spp): docs/viewer.md, "Denoising".

Errors: without the `pyoidn` package, or on a CPU that OIDN's CPU device does not support
(it needs SSE4.1 on x86-64, or ARM64), `Denoiser()` raises NeumatError saying so.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from neumat.renderer.core.errors import NeumatError

QUALITIES = ("high", "balanced", "fast")
AUX_MODES = ("prefilter", "noisy", "clean")
INSTALL_HINT = "install it with `.venv/bin/python -m pip install pyoidn==2.5.1` (tools/install.sh does)"


def _import_pyoidn():
    try:
        import pyoidn
    except ImportError as exc:  # also OSError-like failures of its shared libraries
        raise NeumatError(f"denoising needs Intel Open Image Denoise's Python binding `pyoidn`, which "
                          f"does not load here ({exc}); {INSTALL_HINT}") from exc
    except OSError as exc:
        raise NeumatError(f"the `pyoidn` package is installed but its OIDN libraries do not load ({exc}); "
                          f"reinstall it: {INSTALL_HINT}") from exc
    return pyoidn


def _rgb(name: str, image, shape=None) -> np.ndarray:
    a = np.asarray(image, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3 or min(a.shape[:2]) == 0:
        raise NeumatError(f"denoise: {name} must be an HxWx3 image, got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise NeumatError(f"denoise: {name} has shape {a.shape}, the beauty {shape}")
    return a


class Denoiser:
    """One OIDN CPU device and its filters, reused across calls (creating them costs ~0.1 s);
    calls are serialised. `seconds` is the time of the last call."""

    def __init__(self, quality: str = "high", aux: str = "prefilter"):
        if quality not in QUALITIES:
            raise NeumatError(f"denoise quality must be one of {', '.join(QUALITIES)}, got {quality!r}")
        if aux not in AUX_MODES:
            raise NeumatError(f"denoise guide mode must be one of {', '.join(AUX_MODES)}, got {aux!r}")
        self._oidn = oidn = _import_pyoidn()
        if not oidn.Device.is_cpu_available():
            raise NeumatError("Open Image Denoise has no CPU device for this processor (it needs x86-64 with "
                              "SSE4.1, or ARM64): denoising is not available here")
        self._device = oidn.Device(oidn.OIDN_DEVICE_TYPE_CPU)
        self._check("creating the CPU device")
        self._device.commit()
        self._check("committing the CPU device")
        self.quality = quality
        self.aux = aux
        self._filters: dict[str, object] = {}
        self._lock = threading.Lock()
        self.seconds = 0.0

    def _check(self, what: str) -> None:
        error = self._device.get_error()
        if error is not None:
            raise NeumatError(f"Open Image Denoise failed {what}: {error}")

    def _run(self, name: str, images: dict[str, np.ndarray], hdr: bool | None = None,
             clean_aux: bool | None = None) -> np.ndarray:
        """Runs the RT filter kept under `name` on `images` (slot -> HxWx3 float32, contiguous) and
        returns its output."""
        oidn = self._oidn
        flt = self._filters.get(name)
        if flt is None:
            flt = self._filters[name] = oidn.Filter(self._device, oidn.OIDN_FILTER_TYPE_RT)
            self._check("creating a filter")
        first = next(iter(images.values()))
        output = np.empty_like(first)
        for slot in ("color", "albedo", "normal"):
            if slot not in images:
                flt.unset_image(slot)  # a guide of an earlier call must not stay bound
        for slot, data in {**images, "output": output}.items():
            flt.set_image(slot, data, oidn.OIDN_FORMAT_FLOAT3)
        if hdr is not None:
            flt.set_bool("hdr", hdr)
        if clean_aux is not None:
            flt.set_bool("cleanAux", clean_aux)
        flt.set_quality({"high": oidn.OIDN_QUALITY_HIGH, "balanced": oidn.OIDN_QUALITY_BALANCED,
                         "fast": oidn.OIDN_QUALITY_FAST}[self.quality])
        flt.commit()
        self._check("setting up its filter")
        flt.execute()
        self._check("denoising")
        return output

    def __call__(self, image, albedo=None, normal=None) -> np.ndarray:
        """The denoised linear image (HxWx3 float32) of `image` (linear HDR), guided by `albedo` and
        `normal` where given (both, or albedo alone)."""
        start = time.perf_counter()
        color = _rgb("the beauty image", image)
        color = np.ascontiguousarray(np.where(np.isfinite(color), np.maximum(color, 0.0), 0.0), np.float32)
        images = {"color": color}
        if normal is not None and albedo is None:
            raise NeumatError("denoise: a normal image needs an albedo image too (OIDN's rule)")
        if albedo is not None:
            a = np.maximum(np.nan_to_num(_rgb("the albedo image", albedo, color.shape), posinf=0.0), 0.0)
            a = a / np.maximum(a.max(axis=-1, keepdims=True), 1.0)
            images["albedo"] = np.ascontiguousarray(a, np.float32)
        if normal is not None:
            images["normal"] = np.ascontiguousarray(np.clip(np.nan_to_num(
                _rgb("the normal image", normal, color.shape)), -1.0, 1.0), np.float32)
        with self._lock:
            if self.aux == "prefilter":
                for aux in ("albedo", "normal"):
                    if aux in images:
                        images[aux] = self._run(aux, {aux: images[aux]})
            result = self._run("beauty", images, hdr=True, clean_aux=albedo is not None and self.aux != "noisy")
        self.seconds = time.perf_counter() - start
        return result

    def close(self) -> None:
        with self._lock:
            for flt in self._filters.values():
                flt.release()
            self._filters.clear()
            if self._device is not None:
                self._device.release()
                self._device = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def denoise(image, albedo=None, normal=None, quality: str = "high", aux: str = "prefilter") -> np.ndarray:
    """One-off denoising (a Denoiser created and released for this call)."""
    denoiser = Denoiser(quality, aux)
    try:
        return denoiser(image, albedo, normal)
    finally:
        denoiser.close()


def denoise_result(result, denoiser: Denoiser | None = None) -> np.ndarray:
    """A RenderResult's beauty denoised with its own albedo and normal AOVs."""
    if denoiser is None:
        return denoise(result.image, result.aovs["albedo"], result.aovs["normal"])
    return denoiser(result.image, result.aovs["albedo"], result.aovs["normal"])
