"""The parameter mip pyramid: prefiltered per-texel parameter vectors for every level, so that a
coarse texel describes the appearance of the fine texels it covers, not their average inputs.

Filter. Each level halves the one below with the separable kernel [1, 3, 3, 1] / 8 along each
axis, wrapped (the texture tiles): a 2x2 box widened by one texel, so that it cannot alias at
Nyquist. Every input texel contributes exactly 1/4 in total, which keeps means exact.

Per-layer weighting. A layer's weight is averaged plainly. Its other parameters only matter
where the layer is present, so they are averaged weighted by its weight (plus 1e-6, so that a
footprint without the layer falls back to the plain average). The bottom layer's weight is 1.

Normals and roughness (LEAN, Olano and Baker 2010, applied to GGX as Beckmann-like). A texel's
microsurface is described in slope space: its mesoscale normal n gives the mean slope
s = (-n.x / n.z, -n.y / n.z), and its roughness the slope covariance

    Sigma = R(phi) diag(alpha_u^2, alpha_v^2) R(phi)^T / 2

(isotropic layers: alpha_u = alpha_v = alpha). phi is the conductor's rotation: the alpha_u
direction is the tangent turned by phi from +u towards +v. The filtered texel, by the law of total
variance, has

    s' = E[s],   Sigma' = E[Sigma] + E[s s^T] - s' s'^T,

with the expectations under the filter's (weighted) kernel. The stored normal is
normalize(-s'.x, -s'.y, 1); a bumpy normal map thus widens the lobe instead of flattening it.
Isotropic layers (dielectric, flakes) store alpha' = sqrt(trace Sigma'), i.e. alpha^2 += the
variance of the slopes. Conductors store the eigen-decomposition of Sigma':
alpha_u'^2, alpha_v'^2 = 2 * eigenvalues, and phi' = an eigenvector's angle, chosen among the four
equivalent (phi + k pi / 2, u and v swapped for odd k) as the one nearest the footprint's mean
rotation (mean of 2 phi on the circle, so that phi and phi + pi agree), which keeps phi continuous
across levels; an isotropic Sigma' keeps that mean. Alphas are clamped to 1, the input range.
Layers without a slope-space roughness (diffuse; sheen, whose alpha is a fuzz parameter) get the
filtered normal and plain weighted averages of the rest. Because Sigma and s are recovered exactly
from a level's stored values, filtering level by level equals filtering level 0 with the combined
kernel.
"""

from typing import TYPE_CHECKING

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.layout import LAYER_TYPES, StackLayout

if TYPE_CHECKING:  # graph.py re-exports build_pyramid, so it cannot be imported here at run time
    from neumat.renderer.materials.graph import Material

# Layer parameters describing slope-space roughness, per layer type.
MICROSURFACE_PARAMS = {"conductor": ("alpha_u", "alpha_v", "rotation"), "dielectric": ("alpha",), "flakes": ("alpha",)}
WEIGHT_EPSILON = 1e-6


def reduce(x: np.ndarray) -> np.ndarray:
    """Halves an [h, w, C] array along both axes with the wrapped [1, 3, 3, 1] / 8 kernel."""
    for axis in (0, 1):
        x = np.moveaxis(x, axis, 0)
        even, odd = x[0::2], x[1::2]
        x = np.moveaxis((np.roll(odd, 1, 0) + 3 * (even + odd) + np.roll(even, -1, 0)) * 0.125, 0, axis)
    return x


def _covariance(alpha_u: np.ndarray, alpha_v: np.ndarray, phi: np.ndarray) -> list[np.ndarray]:
    """Slope covariance (xx, yy, xy) of a rotated anisotropic lobe."""
    c, s = np.cos(phi), np.sin(phi)
    au2, av2 = alpha_u * alpha_u, alpha_v * alpha_v
    return [0.5 * (au2 * c * c + av2 * s * s), 0.5 * (au2 * s * s + av2 * c * c), 0.5 * (au2 - av2) * c * s]


def _filter_layer(layout: StackLayout, layer: int, x: np.ndarray, out: np.ndarray) -> None:
    """Writes layer `layer` of the level below `x` into `out` (both float64)."""
    type_name = layout.layer_types[layer]

    def slot(param: str) -> slice:
        return layout.slot(layer, param)

    weight = x[..., slot("weight")] + WEIGHT_EPSILON
    micro = MICROSURFACE_PARAMS.get(type_name, ())
    linear = [p for p, _ in LAYER_TYPES[type_name].params if p not in ("weight", "normal", *micro)]

    n = x[..., slot("normal")]
    sx, sy = -n[..., 0] / n[..., 2], -n[..., 1] / n[..., 2]
    moments = [sx, sy, sx * sx, sy * sy, sx * sy]
    if type_name == "conductor":
        phi = x[..., slot("rotation")][..., 0]
        moments += _covariance(x[..., slot("alpha_u")][..., 0], x[..., slot("alpha_v")][..., 0], phi)
        moments += [np.cos(2 * phi), np.sin(2 * phi), phi]
    elif micro:
        alpha = x[..., slot("alpha")][..., 0]
        moments += _covariance(alpha, alpha, np.zeros_like(alpha))
    channels = [x[..., slot(p)] for p in linear] + [m[..., None] for m in moments]
    stacked = np.concatenate(channels, axis=-1)
    total = reduce(weight)
    mean = reduce(stacked * weight) / total

    out[..., slot("weight")] = total - WEIGHT_EPSILON
    at = 0
    for p in linear:
        width = slot(p).stop - slot(p).start
        out[..., slot(p)] = mean[..., at:at + width]
        at += width
    m = [mean[..., at + k] for k in range(len(moments))]
    mx, my = m[0], m[1]
    normal = np.stack([-mx, -my, np.ones_like(mx)], axis=-1)
    out[..., slot("normal")] = normal / np.linalg.norm(normal, axis=-1, keepdims=True)
    if not micro:
        return
    cxx = m[2] - mx * mx + m[5]
    cyy = m[3] - my * my + m[6]
    cxy = m[4] - mx * my + m[7]
    if type_name != "conductor":
        out[..., slot("alpha")] = np.sqrt(np.clip(cxx + cyy, 0, 1))[..., None]
        return
    half_sum, half_diff = 0.5 * (cxx + cyy), 0.5 * (cxx - cyy)
    radius = np.hypot(half_diff, cxy)
    major, minor = half_sum + radius, np.maximum(half_sum - radius, 0)
    theta = 0.5 * np.arctan2(cxy, half_diff)  # direction of the major axis
    reference = 0.5 * np.arctan2(m[9], m[8])
    reference += np.pi * np.round((m[10] - reference) / np.pi)  # the branch nearest the mean rotation
    k = np.round((reference - theta) / (0.5 * np.pi))
    isotropic = radius <= 1e-6 * half_sum
    swap = (k % 2 == 1) & ~isotropic
    out[..., slot("rotation")] = np.where(isotropic, reference, theta + 0.5 * np.pi * k)[..., None]
    out[..., slot("alpha_u")] = np.sqrt(np.clip(2 * np.where(swap, minor, major), 0, 1))[..., None]
    out[..., slot("alpha_v")] = np.sqrt(np.clip(2 * np.where(swap, major, minor), 0, 1))[..., None]


def build_pyramid(material: "Material", params: np.ndarray) -> list[np.ndarray]:
    """Level 0 is `params` ([N, N, K], N a power of two), then each level halves the one below
    down to 1 x 1; every level is [h, w, K] float32 (see the module doc for the prefiltering)."""
    layout = material.layout
    n = params.shape[0]
    if params.ndim != 3 or params.shape[1] != n or params.shape[2] != layout.width or n & (n - 1):
        raise NeumatError(f"{material.path.name}: parameters must be [N, N, {layout.width}] with N a power of two, "
                          f"got {list(params.shape)}")
    levels = [np.asarray(params, np.float32)]
    while levels[-1].shape[0] > 1:
        x = levels[-1].astype(np.float64)
        out = np.empty((x.shape[0] // 2, x.shape[1] // 2, x.shape[2]))
        for layer in range(len(layout.layer_types)):
            _filter_layer(layout, layer, x, out)
        levels.append(out.astype(np.float32))
    return levels
