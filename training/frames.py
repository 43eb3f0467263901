"""Learned shading frames (docs/design.md, 'Neural model'): a bias-free linear layer maps the latent to two
perturbed frames in which the evaluator sees wi and wo, so mesoscale normal and tangent detail need
not be learned by the evaluator itself (the paper's ablation: FLIP 0.196 -> 0.082 with them).

The 12 raw outputs are [n1 (3), t1 (3), n2 (3), t2 (3)]; each frame is
n = normalize(raw_n + (0, 0, 1)), t = normalize(t' - (t'.n) n) with t' = raw_t + (1, 0, 0),
b = cross(n, t), so (t, b, n) is orthonormal and right-handed.

Direction features (12), in one of two encodings (NeuralMaterialConfig.directions):
- "vectors": for frame 1 then frame 2, (wi.t, wi.b, wi.n, wo.t, wo.b, wo.n);
- "half_difference": for frame 1 then frame 2, (h, d) with wi, wo in that frame's coordinates,
  h = normalize(wi + wo) the half vector and d = R wi the difference vector, where R is the
  shortest-arc rotation taking h to the normal z. Rusinkiewicz's d rotates by -phi_h about z, then
  by -theta_h about y: undefined (and discontinuous) at h = z, exactly the mirror direction where
  narrow peaks live; the shortest-arc R is smooth everywhere except h = -z (h below its frame, never
  reached for wi, wo above the surface). Its closed form (Rodrigues with k = h x z, c = h.z):
  R v = c v + k x v + k (k.v) / (1 + c); R h = z, and R wo = (-d_x, -d_y, d_z), so (h, d) holds both
  directions. A narrow peak about the mirror direction is then a narrow function of h_x, h_y
  alone, which a small ReLU network resolves with fewer units than a function of wi + wo.
"""

import torch
from torch import nn

Frames = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

_EPS = 1e-12


def safe_normalize(v: torch.Tensor) -> torch.Tensor:
    """v / |v| over the last axis; a zero vector stays zero instead of becoming NaN."""
    return v * torch.rsqrt((v * v).sum(-1, keepdim=True).clamp_min(_EPS))


class ShadingFrames(nn.Module):
    """latent [N, C] -> (n1, t1, b1, n2, t2, b2), each [N, 3] in the shading frame."""

    def __init__(self, latent_channels: int = 8) -> None:
        super().__init__()
        self.linear = nn.Linear(latent_channels, 12, bias=False)
        # Zero weights: both frames start as the shading frame, so training begins from the
        # unperturbed geometry; the gradient is still non-zero (it is proportional to the latent).
        nn.init.zeros_(self.linear.weight)

    def forward(self, latent: torch.Tensor) -> Frames:
        raw = self.linear(latent)
        z = raw.new_tensor([0.0, 0.0, 1.0])
        x = raw.new_tensor([1.0, 0.0, 0.0])
        out: list[torch.Tensor] = []
        for k in (0, 6):
            n = safe_normalize(raw[..., k:k + 3] + z)
            t = raw[..., k + 3:k + 6] + x
            t = safe_normalize(t - (t * n).sum(-1, keepdim=True) * n)
            out += [n, t, torch.linalg.cross(n, t, dim=-1)]
        return tuple(out)  # type: ignore[return-value]


def transform(frames: Frames, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """The 12 direction features [N, 12] (order in the module doc)."""
    n1, t1, b1, n2, t2, b2 = frames
    cols = []
    for t, b, n in ((t1, b1, n1), (t2, b2, n2)):
        for w in (wi, wo):
            cols += [(w * t).sum(-1), (w * b).sum(-1), (w * n).sum(-1)]
    return torch.stack(cols, dim=-1)


def identity_transform(wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """The direction features when both frames are the shading frame (the no-frames ablation)."""
    return torch.cat([wi, wo, wi, wo], dim=-1)


_ONE_PLUS_C_MIN = 1e-6  # floor of 1 + h.z: R is singular only at h = -z


def half_difference(wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
    """[h, d] [N, 6] from wi, wo [N, 3] in one frame's coordinates (module doc)."""
    h = safe_normalize(wi + wo)
    hx, hy, c = h[..., 0], h[..., 1], h[..., 2]
    vx, vy, vz = wi[..., 0], wi[..., 1], wi[..., 2]
    s = (hy * vx - hx * vy) / (1.0 + c).clamp_min(_ONE_PLUS_C_MIN)  # (k.v) / (1 + c), k = (h_y, -h_x, 0)
    d = torch.stack([c * vx - hx * vz + hy * s, c * vy - hy * vz - hx * s, c * vz + hx * vx + hy * vy], dim=-1)
    return torch.cat([h, d], dim=-1)


def local(frames: Frames, wi: torch.Tensor, wo: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(wi, wo) in frame 1's coordinates, then in frame 2's: four [N, 3] tensors."""
    n1, t1, b1, n2, t2, b2 = frames
    out = []
    for t, b, n in ((t1, b1, n1), (t2, b2, n2)):
        for w in (wi, wo):
            out.append(torch.stack([(w * t).sum(-1), (w * b).sum(-1), (w * n).sum(-1)], dim=-1))
    return tuple(out)


def features(local_dirs: tuple[torch.Tensor, ...], encoding: str) -> torch.Tensor:
    """The 12 direction features from local() (or (wi, wo, wi, wo) without frames) in `encoding`."""
    wi1, wo1, wi2, wo2 = local_dirs
    if encoding == "vectors":
        return torch.cat([wi1, wo1, wi2, wo2], dim=-1)
    if encoding == "half_difference":
        return torch.cat([half_difference(wi1, wo1), half_difference(wi2, wo2)], dim=-1)
    raise ValueError(f"unknown direction encoding '{encoding}' (vectors, half_difference)")
