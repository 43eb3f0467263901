"""The optional analytic lobe of the evaluator (`--network 2x32+lobe`; docs/design.md, 'Neural model').

A hybrid neural-microfacet BRDF: f * cos = exp(MLP - 3) + lobe, where the lobe is an anisotropic
GGX microfacet reflection whose parameters one linear layer decodes from the latent, once per hit:

    lobe(wi, wo) = F(wi.h) * D(h) * G2(wi, wo) / (4 wi.n)       (that is f_lobe * cos theta_o)

with wi, wo in learned frame 1's coordinates (training/frames.py; the shading frame without learned
frames), h = normalize(wi + wo), zero unless both wi and wo lie above that frame;
- D the anisotropic GGX distribution with roughness alpha_x (along t1), alpha_y (along b1):
  D(h) = 1 / (pi ax ay ((h_x / ax)^2 + (h_y / ay)^2 + h_z^2)^2);
- G2 = 1 / (1 + Lambda(wi) + Lambda(wo)) the height-correlated Smith masking-shadowing,
  Lambda(w) = (sqrt(1 + (ax^2 w_x^2 + ay^2 w_y^2) / w_z^2) - 1) / 2;
- F = f0 + (f90 - f0) (1 - wi.h)^5, Schlick's Fresnel with its two ends free: an RGB f0 in (0, 1) at
  normal incidence and a scalar f90 in (0, 1) at grazing. A full clear coat is f0 0.04, f90 1; a coat
  present over a share g of the texel (worn through, a partial layer) is f0 0.04 g, f90 g; f0 also
  takes in whatever the layers below add to the peak facing the light.

Why the ends are free: in the earlier form, gate * (f0 + (1 - f0) (1 - wi.h)^5), raising the grazing
end (the gate) raised the normal-incidence end (gate * f0) too unless f0 fell with it, a curved
valley that training did not follow: car_paint's coat stayed at reflectance 0.52 at grazing where the
real coat has 1 (median gate 0.52, f0 0.15), its mirror peak 2.1x short there
(tools/energy_by_angle.py; docs/baking.md, 'Lobe energy').

Narrow peaks (a clear coat's mirror reflection, a glaze) come from the lobe, whose width is a decoded
number rather than something the small ReLU network must build from its units; the MLP fits what
is left (diffuse, multiple scattering, whatever the lobe does not explain). Since the output is a sum,
the log-L1 loss trains both together, end to end; the sampler's KL target is the whole sum.

The 6 outputs of the linear layer (latent C -> 6, with bias), in order:
  0       f90 = sigmoid(x)
  1, 2, 3 f0 (RGB) = sigmoid(x)
  4, 5    alpha_x, alpha_y: log-uniform in [ALPHA_MIN, ALPHA_MAX] through a sigmoid (as the sampler's)
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

ALPHA_MIN, ALPHA_MAX = 1e-3, 2.0
NUM_OUTPUTS = 6
# The start: zero weights (the same lobe at every texel, its gradient still proportional to the
# latent) and biases for a faint, moderately narrow dielectric reflection: a coat over 12 % of the
# texel (f0 0.12 x 0.04, f90 0.12), alpha 0.1, whose peak at normal incidence adds 0.005 to f * cos.
INIT_BIAS = (-2.0, -5.33, -5.33, -5.33, 0.43, 0.43)

_Z_MIN = 1e-6  # floor of w.z inside the formulas (masked out below it)


@dataclass
class LobeParams:
    f90: torch.Tensor  # [N]
    f0: torch.Tensor  # [N, 3]
    alpha: torch.Tensor  # [N, 2] (alpha_x, alpha_y)


def params_from_outputs(raw: torch.Tensor) -> LobeParams:
    lo, hi = math.log(ALPHA_MIN), math.log(ALPHA_MAX)
    return LobeParams(f90=torch.sigmoid(raw[..., 0]), f0=torch.sigmoid(raw[..., 1:4]),
                      alpha=torch.exp(lo + (hi - lo) * torch.sigmoid(raw[..., 4:6])))


class Lobe(nn.Module):
    """latent [N, C] -> LobeParams (one linear layer, module doc)."""

    def __init__(self, latent_channels: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(latent_channels, NUM_OUTPUTS)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.copy_(torch.tensor(INIT_BIAS))

    def forward(self, latent: torch.Tensor) -> LobeParams:
        return params_from_outputs(self.linear(latent))


def _lambda(w: torch.Tensor, ax: torch.Tensor, ay: torch.Tensor) -> torch.Tensor:
    z2 = w[..., 2].clamp_min(_Z_MIN) ** 2
    return 0.5 * (torch.sqrt(1.0 + ((ax * w[..., 0]) ** 2 + (ay * w[..., 1]) ** 2) / z2) - 1.0)


def evaluate(p: LobeParams, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """F D G2 / (4 wi.z) [N, 3] for wi, wo [N, 3] in the lobe's frame (module doc).

    Pairs not both above the surface are 0. They are evaluated at the normal instead of at their
    own directions: wo = -wi would give h = 0 and an infinite D, whose gradient (inf times the
    mask's 0) is NaN even though the value is masked, and one such query poisons a training step."""
    ax, ay = p.alpha[..., 0], p.alpha[..., 1]
    above = (wi[..., 2] > 0) & (wo[..., 2] > 0)
    normal = torch.zeros_like(wi)
    normal[..., 2] = 1.0
    wi = torch.where(above[..., None], wi, normal)
    wo = torch.where(above[..., None], wo, normal)
    s = wi + wo
    h = s * torch.rsqrt((s * s).sum(-1, keepdim=True).clamp_min(1e-24))
    q = (h[..., 0] / ax) ** 2 + (h[..., 1] / ay) ** 2 + h[..., 2] ** 2
    d = 1.0 / (math.pi * ax * ay * q * q)
    g2 = 1.0 / (1.0 + _lambda(wi, ax, ay) + _lambda(wo, ax, ay))
    c = (wi * h).sum(-1).clamp(0.0, 1.0)
    fresnel = p.f0 + (p.f90[..., None] - p.f0) * ((1.0 - c) ** 5)[..., None]
    value = (d * g2 / (4.0 * wi[..., 2].clamp_min(_Z_MIN)))[..., None] * fresnel
    return torch.where(above[..., None], value, torch.zeros_like(value))
