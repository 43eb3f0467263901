"""Learned shading frames (docs/design.md, 'Neural model'): a bias-free linear layer maps the latent to two
perturbed frames in which the evaluator sees wi and wo, so mesoscale normal and tangent detail need
not be learned by the evaluator itself (the paper's ablation: FLIP 0.196 -> 0.082 with them).

The 12 raw outputs are [n1 (3), t1 (3), n2 (3), t2 (3)]; each frame is
n = normalize(raw_n + (0, 0, 1)), t = normalize(t' - (t'.n) n) with t' = raw_t + (1, 0, 0),
b = cross(n, t), so (t, b, n) is orthonormal and right-handed.

Direction features (12): for frame 1 then frame 2, (wi.t, wi.b, wi.n, wo.t, wo.b, wo.n).
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
