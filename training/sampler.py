"""The learned importance sampler (docs/design.md, 'Neural model'): a small MLP decodes (latent, wi) once per hit
into an analytic two-lobe mixture whose sample and pdf are both closed-form.

Lobes (directions in the shading frame, z = normal; the mixture is a density over the whole sphere):
- diffuse: a cosine lobe about a tilted axis a = normalize(tilt_x, tilt_y, 1),
  pdf_d(wo) = max(0, wo.a) / pi (it may reach below the surface; it still integrates to 1).
- specular: microfacet normals h from a non-centred, correlated, anisotropic GGX distribution of
  slopes m = -(h_x, h_y) / h_z. With Sigma = [[ax^2, rho ax ay], [rho ax ay, ay^2]] = L L^T (Cholesky)
  and mean mu, P22(m) = 1 / (pi det(L) (1 + |L^-1 (m - mu)|^2)^2): the standard isotropic GGX slope
  density pushed through m = L s + mu. wo reflects wi about h. Slopes cover the upper hemisphere of h
  once, and h -> wo is one-to-one, so pdf_s(wo) = P22(m) / h_z^3 / (4 |wo.h|) (= D(h) h_z / (4 |wo.h|)
  with D = P22 / h_z^4), where h = +-normalize(wi + wo) with h_z >= 0.

The 9 network outputs, in order:
  0, 1  alpha_x, alpha_y: log-uniform in [ALPHA_MIN, ALPHA_MAX] through a sigmoid (smooth bounds,
        no dead gradient from a hard clamp)
  2     rho = RHO_MAX * tanh(x)
  3, 4  mean slopes mu_x, mu_y (unbounded)
  5, 6  diffuse tilt (tilt_x, tilt_y) (unbounded)
  7, 8  mixture logits (diffuse, specular) -> softmax
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from neumat.training.frames import safe_normalize
from neumat.training.networks import MLP

ALPHA_MIN, ALPHA_MAX = 1e-3, 2.0
RHO_MAX = 0.99
SAMPLER_HIDDEN = [32, 32, 32]
NUM_OUTPUTS = 9

_NORM2_EPS = 1e-24  # floor of |wi + wo|^2: h stays finite at wo = -wi
_Q2_EPS = 1e-12  # floor of (h_z^2 + |L^-1 e|^2)^2, zero only for a degenerate h = 0
_DOT_EPS = 1e-6  # floor of |wo.h|: below it float32 cannot resolve the half vector (wo -> -wi)
_U_MAX = 1.0 - 1e-7  # keeps the GGX radial inversion finite at u -> 1


@dataclass
class SamplerParams:
    """The decoded mixture; per-sample tensors (a batch of 1 broadcasts against any N)."""

    alpha: torch.Tensor  # [N, 2] (alpha_x, alpha_y)
    rho: torch.Tensor  # [N] slope correlation
    mean: torch.Tensor  # [N, 2] mean slopes
    axis: torch.Tensor  # [N, 3] unit axis of the diffuse lobe
    weights: torch.Tensor  # [N, 2] (diffuse, specular), summing to 1


def params_from_outputs(raw: torch.Tensor) -> SamplerParams:
    """The mapping of the network's 9 outputs (module doc)."""
    lo, hi = math.log(ALPHA_MIN), math.log(ALPHA_MAX)
    alpha = torch.exp(lo + (hi - lo) * torch.sigmoid(raw[..., 0:2]))
    tilt = raw[..., 5:7]
    axis = safe_normalize(torch.cat([tilt, torch.ones_like(tilt[..., :1])], dim=-1))
    return SamplerParams(alpha=alpha, rho=RHO_MAX * torch.tanh(raw[..., 2]), mean=raw[..., 3:5],
                         axis=axis, weights=torch.softmax(raw[..., 7:9], dim=-1))


class Sampler(nn.Module):
    """[latent (C), wi (3)] -> 32 -> 32 -> 32 -> 9 -> SamplerParams."""

    def __init__(self, latent_channels: int = 8) -> None:
        super().__init__()
        self.mlp = MLP(latent_channels + 3, SAMPLER_HIDDEN, NUM_OUTPUTS)

    def decode(self, latent: torch.Tensor, wi: torch.Tensor) -> SamplerParams:
        return params_from_outputs(self.mlp(torch.cat([latent, wi], dim=-1)))


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(-1)


def half_vector(wi: torch.Tensor, wo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The microfacet normal h that reflects wi into wo, on the upper hemisphere (h_z >= 0), and
    |wo.h| = |wi + wo| / 2.

    That form of |wo.h| is well conditioned near wo = -wi, where the pdf has its integrable
    1 / |wo + wi| singularity: the dot product (1 + wi.wo) / |wi + wo| is swamped there by the
    rounding of |wi| and |wo| (a relative error of 1e-8 in |wi| changed the pdf 13x in a test).
    """
    s = wi + wo
    norm = torch.sqrt((s * s).sum(-1, keepdim=True).clamp_min(_NORM2_EPS))
    h = s / norm
    return torch.where(h[..., 2:3] < 0, -h, h), 0.5 * norm[..., 0]


def specular_pdf_h(params: SamplerParams, h: torch.Tensor, wo_dot_h: torch.Tensor) -> torch.Tensor:
    """pdf_s(wo) from the microfacet normal h (h_z >= 0) that reflects wi into wo, and |wo.h|.

    P22(m) / h_z^3 rewritten without dividing by h_z: with e = -h_xy - mu h_z = h_z (m - mu),
    P22(m) / h_z^3 = h_z / (pi det(L) (h_z^2 + |L^-1 e|^2)^2), finite and -> 0 at grazing h.
    """
    ax, ay = params.alpha[..., 0], params.alpha[..., 1]
    rho = params.rho
    sr = torch.sqrt(1.0 - rho * rho)
    hz = h[..., 2]
    ex = -h[..., 0] - params.mean[..., 0] * hz
    ey = -h[..., 1] - params.mean[..., 1] * hz
    zx = ex / ax
    zy = (ey / ay - rho * zx) / sr
    q = hz * hz + zx * zx + zy * zy
    den = math.pi * ax * ay * sr * (q * q).clamp_min(_Q2_EPS) * 4.0 * wo_dot_h.abs().clamp_min(_DOT_EPS)
    return hz / den


def specular_pdf(params: SamplerParams, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """pdf_s(wo) [N], solid angle over the sphere."""
    return specular_pdf_h(params, *half_vector(wi, wo))


def diffuse_pdf(params: SamplerParams, wo: torch.Tensor) -> torch.Tensor:
    """pdf_d(wo) [N], solid angle over the sphere."""
    return _dot(wo, params.axis).clamp_min(0.0) / math.pi


def pdf(params: SamplerParams, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """The mixture pdf [N] of wo given wi, solid angle over the sphere."""
    w = params.weights
    return w[..., 0] * diffuse_pdf(params, wo) + w[..., 1] * specular_pdf(params, wi, wo)


def _sample_specular_h(params: SamplerParams, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    # Standard GGX slopes: P(|s| < r) = r^2 / (1 + r^2) inverts to r = sqrt(u / (1 - u)).
    r = torch.sqrt(u1 / (1.0 - u1.clamp_max(_U_MAX)))
    phi = 2.0 * math.pi * u2
    sx, sy = r * torch.cos(phi), r * torch.sin(phi)
    ax, ay, rho = params.alpha[..., 0], params.alpha[..., 1], params.rho
    mx = ax * sx + params.mean[..., 0]
    my = ay * (rho * sx + torch.sqrt(1.0 - rho * rho) * sy) + params.mean[..., 1]
    return safe_normalize(torch.stack([-mx, -my, torch.ones_like(mx)], dim=-1))


def _sample_diffuse(params: SamplerParams, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    a = params.axis
    r = torch.sqrt(u1)
    phi = 2.0 * math.pi * u2
    lx, ly = r * torch.cos(phi), r * torch.sin(phi)
    lz = torch.sqrt((1.0 - u1).clamp_min(0.0))
    # Orthonormal basis about a (Duff et al. 2017; a_z > 0, so no branch is needed).
    k = -1.0 / (1.0 + a[..., 2])
    c = a[..., 0] * a[..., 1] * k
    t1 = torch.stack([1.0 + a[..., 0] ** 2 * k, c, -a[..., 0]], dim=-1)
    t2 = torch.stack([c, 1.0 + a[..., 1] ** 2 * k, -a[..., 1]], dim=-1)
    return lx[..., None] * t1 + ly[..., None] * t2 + lz[..., None] * a


def sample(params: SamplerParams, wi: torch.Tensor, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """wo [N, 3] and its mixture pdf [N] from uniform u [N, 3] (u0 picks the lobe, u1 u2 drive it).

    wo is differentiable in the params through the chosen lobe (reparametrisation). The specular pdf
    of a specular sample uses the sampled h itself, so pdf(params, wi, wo) re-deriving h from wi + wo
    is an independent check of the pair.
    """
    u0, u1, u2 = u[..., 0], u[..., 1], u[..., 2]
    h_s = _sample_specular_h(params, u1, u2)
    wo_s = safe_normalize(2.0 * _dot(wi, h_s)[..., None] * h_s - wi)
    wo_d = _sample_diffuse(params, u1, u2)
    is_spec = (u0 >= params.weights[..., 0])[..., None]
    wo = torch.where(is_spec, wo_s, wo_d)
    h_r, cos_r = half_vector(wi, wo)
    h = torch.where(is_spec, h_s, h_r)
    cos_d = torch.where(is_spec[..., 0], _dot(wi, h_s), cos_r)
    w = params.weights
    p = w[..., 0] * diffuse_pdf(params, wo) + w[..., 1] * specular_pdf_h(params, h, cos_d)
    return wo, p
