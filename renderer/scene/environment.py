"""Environment lighting: equirectangular radiance maps and their importance-sampling tables.

Every environment becomes one equirectangular map (shaders/render/environment.slang states the
mapping): an EXR/PNG file as stored, a constant colour as a small constant map, the built-in
studio tabulated on the device. `EnvironmentMap.distribution` builds the piecewise-constant 2D
sampling distribution in numpy: per pixel, the luminance blurred by a [1 2 1] tent (so every
pixel that bilinear lookup can make non-zero has a non-zero probability) times sin(theta) (the
pixel's solid angle); a marginal CDF over rows and one conditional CDF per row.
"""

import math
from dataclasses import dataclass

import numpy as np
import slangpy as spy

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.color import luminance
from neumat.renderer.scene.scene_file import EnvironmentSpec

CONSTANT_MAP_SIZE = (64, 32)  # a constant environment as a map: (width, height)


@dataclass
class Distribution:
    marginal: np.ndarray     # [H + 1] float32 CDF, last = 1
    conditional: np.ndarray  # [H, W + 1] float32 CDFs, last column = 1
    density: np.ndarray      # [H, W] float32 pdf in (u, v)


@dataclass
class EnvironmentMap:
    """Linear RGB radiance [H, W, 3] (intensity applied) and a rotation about +y in radians."""

    radiance: np.ndarray
    rotation: float = 0.0
    name: str = "environment"

    @property
    def width(self) -> int:
        return int(self.radiance.shape[1])

    @property
    def height(self) -> int:
        return int(self.radiance.shape[0])

    def distribution(self) -> Distribution | None:
        """The sampling tables, or None when the map is black everywhere."""
        return build_distribution(self.radiance)

    def mean_radiance(self) -> np.ndarray:
        """Solid-angle mean of the radiance (RGB): the irradiance on any plane is pi times it for a
        constant map."""
        h = self.height
        sin = np.sin((np.arange(h) + 0.5) / h * np.pi)[:, None, None]
        return (self.radiance * sin).sum((0, 1)) / (sin.sum() * self.width)


def build_distribution(radiance: np.ndarray) -> Distribution | None:
    h, w = radiance.shape[:2]
    lum = np.maximum(luminance(np.asarray(radiance[..., :3], np.float64)), 0.0)
    # [1 2 1] tent: wrap in u, clamp in v.
    lum = 0.25 * (np.roll(lum, 1, axis=1) + 2.0 * lum + np.roll(lum, -1, axis=1))
    up = np.concatenate([lum[:1], lum[:-1]], axis=0)
    down = np.concatenate([lum[1:], lum[-1:]], axis=0)
    lum = 0.25 * (up + 2.0 * lum + down)
    weights = lum * np.sin((np.arange(h) + 0.5) / h * np.pi)[:, None]
    total = weights.sum()
    if not total > 0.0 or not np.isfinite(total):
        return None
    rows = weights.sum(axis=1)
    marginal = np.concatenate([[0.0], np.cumsum(rows)]) / total
    marginal[-1] = 1.0
    safe = np.where(rows > 0.0, rows, 1.0)[:, None]
    conditional = np.concatenate([np.zeros((h, 1)), np.cumsum(weights, axis=1)], axis=1) / safe
    conditional[rows <= 0.0] = np.linspace(0.0, 1.0, w + 1)  # never chosen; keep them valid
    conditional[:, -1] = 1.0
    density = weights / total * (w * h)
    return Distribution(marginal.astype(np.float32), conditional.astype(np.float32), density.astype(np.float32))


def direction_to_uv(d: np.ndarray) -> np.ndarray:
    """The map's (u, v) of unrotated directions [N, 3] (environment.slang's mapping)."""
    u = np.mod(np.arctan2(d[:, 0], -d[:, 2]) / (2 * np.pi), 1.0)
    v = np.arccos(np.clip(d[:, 1], -1.0, 1.0)) / np.pi
    return np.stack([u, v], 1)


def uv_to_direction(uv: np.ndarray) -> np.ndarray:
    phi = 2 * np.pi * uv[:, 0]
    theta = np.pi * uv[:, 1]
    return np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), -np.sin(theta) * np.cos(phi)], 1)


def tabulate_studio(device: spy.Device, width: int = 1024, height: int = 512) -> np.ndarray:
    """The built-in studio environment (shaders/lighting/studio.slang) as an equirect map [H, W, 3]."""
    from neumat.renderer.core.kernels import compute_kernel

    kernel = compute_kernel(device, "render/tabulate_studio.slang", "tabulateStudio")
    out = device.create_buffer(element_count=width * height, struct_size=16,
                               usage=spy.BufferUsage.unordered_access | spy.BufferUsage.shader_resource)
    kernel.dispatch(thread_count=[width, height, 1], vars={"size": spy.uint2(width, height), "output": out})
    return out.to_numpy().view(np.float32).reshape(height, width, 4)[..., :3].copy()


def load_environment(device: spy.Device, spec: EnvironmentSpec, where: str = "environment") -> EnvironmentMap | None:
    """The environment of a scene as a map (None for type = "none")."""
    rotation = math.radians(spec.rotation)
    if spec.type == "none":
        return None
    if spec.type == "constant":
        radiance = np.broadcast_to(np.asarray(spec.color, np.float32) * spec.intensity,
                                   (CONSTANT_MAP_SIZE[1], CONSTANT_MAP_SIZE[0], 3)).copy()
        return EnvironmentMap(radiance, rotation, "constant")
    if spec.type == "studio":
        radiance = tabulate_studio(device, *spec.resolution) * np.float32(spec.intensity)
        return EnvironmentMap(radiance, rotation, "studio")
    from neumat.renderer.images.io import read_image

    try:
        radiance = read_image(spec.file)
    except NeumatError as exc:
        raise NeumatError(f"{where}.file: {exc}") from None
    if radiance.shape[0] < 2 or radiance.shape[1] < 2:
        raise NeumatError(f"{where}.file: {spec.file.name} is {radiance.shape[1]}x{radiance.shape[0]}; an "
                          "environment map needs at least 2x2 pixels")
    if not np.all(np.isfinite(radiance)):
        raise NeumatError(f"{where}.file: {spec.file.name} contains NaN or infinite values")
    radiance = np.maximum(radiance, 0.0) * np.float32(spec.intensity)
    return EnvironmentMap(np.ascontiguousarray(radiance, np.float32), rotation, spec.file.stem)
