"""`neumat material preview`: a material on a sphere in the studio environment (shaders/preview.slang)."""

import math
from collections.abc import Callable

import numpy as np
import slangpy as spy

from neumat.renderer.core.kernels import compute_kernel
from neumat.renderer.materials.reference import ReferenceMaterial

SAMPLES_PER_DISPATCH = 4  # keeps each dispatch short so progress shows and lavapipe stays responsive


def render_preview(material: ReferenceMaterial, size: int = 384, spp: int = 64, seed: int = 0,
                   uv_scale: tuple[float, float] = (2.0, 1.0),
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Linear float32 [size, size, 3]: the sphere seen from +z under the studio environment.

    `uv_scale` tiles the material around the sphere (2 x 1 keeps texels roughly square);
    `progress(n)` is called with the number of samples per pixel added after each dispatch.
    """
    device: spy.Device = material.device
    kernel = compute_kernel(device, "preview.slang", "renderPreview")
    accumulation = device.create_texture(format=spy.Format.rgba32_float, width=size, height=size,
                                         usage=spy.TextureUsage.unordered_access | spy.TextureUsage.shader_resource)
    accumulation.copy_from_numpy(np.zeros((size, size, 4), np.float32))
    fixed = dict(material.uniforms(), size=spy.uint2(size, size), cameraDistance=3.4,
                 tanHalfFov=math.tan(math.radians(17.0)), uvScale=spy.float2(*uv_scale),
                 textureResolution=float(material.resolution[1]), seed=seed, accumulation=accumulation)
    done = 0
    while done < spp:
        count = min(SAMPLES_PER_DISPATCH, spp - done)
        kernel.dispatch(thread_count=[size, size, 1], vars=dict(fixed, firstSample=done, sampleCount=count))
        done += count
        if progress:
            progress(count)
    acc = accumulation.to_numpy()
    return np.ascontiguousarray(acc[..., :3] / np.maximum(acc[..., 3:4], 1.0))
