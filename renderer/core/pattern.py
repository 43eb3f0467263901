"""The procedural test image of `neumat render-test`: proof that device, compiler and image I/O work."""

import numpy as np
import slangpy as spy

from neumat.renderer.core.kernels import compute_kernel


def render_pattern(device: spy.Device, width: int = 1024, height: int = 512) -> np.ndarray:
    """Runs shaders/pattern.slang on `device`; returns linear float32 HxWx3."""
    kernel = compute_kernel(device, "pattern.slang", "renderPattern")
    target = device.create_texture(format=spy.Format.rgba32_float, width=width, height=height,
                                   usage=spy.TextureUsage.unordered_access | spy.TextureUsage.shader_resource)
    kernel.dispatch(thread_count=[width, height, 1], size=spy.uint2(width, height), output=target)
    return np.ascontiguousarray(target.to_numpy()[..., :3])
