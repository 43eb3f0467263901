"""The latent texture: a trainable mip pyramid of C-channel latent vectors (docs/design.md, 'Neural model').

Every level is its own parameter, trained for the BRDF filtered over its footprint rather than
downsampled from level 0, so coarse levels are free variables like the finest one.

Addressing (shared with the runtime textures): uv in [0, 1)^2 tiles (wrap); u runs along x (columns),
v along y (rows); texel (i, j) of a w x h level has its centre at ((i + 0.5) / w, (j + 0.5) / h).
"""

import math

import numpy as np
import torch
from torch import nn


class LatentPyramid(nn.Module):
    """Levels from resolution x resolution (level 0) down to 1 x 1, each a parameter [C, h, w]."""

    def __init__(self, resolution: int, channels: int = 8, init_std: float = 0.1) -> None:
        super().__init__()
        if resolution < 1 or resolution & (resolution - 1):
            raise ValueError(f"resolution must be a power of two, got {resolution}")
        self.resolution = resolution
        self.channels = channels
        self.num_levels = int(math.log2(resolution)) + 1
        self.levels = nn.ParameterList(
            nn.Parameter(torch.randn(channels, resolution >> lvl, resolution >> lvl) * init_std)
            for lvl in range(self.num_levels))

    def sample(self, uv: torch.Tensor, lod: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Latents [N, C] at uv [N, 2] and fractional lod [N].

        The level is a stochastic pick between floor(lod) and floor(lod) + 1 with probability
        frac(lod) of the coarser one, then bilinear within it: the paper found this better than
        trilinear blending of latents (decoding a blend is not the blend of decodes).
        lod is clamped to [0, num_levels - 1].
        """
        lod = lod.clamp(0.0, self.num_levels - 1)
        base = lod.floor()
        rnd = torch.rand(lod.shape, device=lod.device, dtype=lod.dtype, generator=generator)
        level = (base + (rnd < lod - base).to(lod.dtype)).long().clamp_max(self.num_levels - 1)
        return self.sample_level(uv, level)

    def sample_level(self, uv: torch.Tensor, level: int | torch.Tensor) -> torch.Tensor:
        """Bilinear latents [N, C] at uv [N, 2] from an exact level (an int, or a long tensor [N] that
        may mix levels): deterministic, for training a given level."""
        n = uv.shape[0]
        if isinstance(level, int):
            return self._bilinear(self.levels[level], uv)
        out = uv.new_zeros(n, self.channels)
        for lvl in torch.unique(level).tolist():
            sel = (level == lvl).nonzero(as_tuple=True)[0]
            out = out.index_put((sel,), self._bilinear(self.levels[lvl], uv[sel]))
        return out

    @staticmethod
    def _bilinear(tex: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        c, h, w = tex.shape
        x = uv[:, 0] * w - 0.5
        y = uv[:, 1] * h - 0.5
        x0, y0 = x.floor(), y.floor()
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        i0 = x0.long().remainder(w)
        j0 = y0.long().remainder(h)
        i1, j1 = (i0 + 1).remainder(w), (j0 + 1).remainder(h)
        flat = tex.reshape(c, h * w)
        corners = torch.stack([j0 * w + i0, j0 * w + i1, j1 * w + i0, j1 * w + i1])  # [4, N]
        v = flat[:, corners.reshape(-1)].reshape(c, 4, -1).permute(1, 2, 0)  # [4, N, C]
        return ((1 - fy) * ((1 - fx) * v[0] + fx * v[1])
                + fy * ((1 - fx) * v[2] + fx * v[3]))

    @torch.no_grad()
    def fill_from(self, level: int, values: torch.Tensor) -> None:
        """Overwrite a level with values [h, w, C] (texel-major, as the encoder produces them when run
        over the level's parameter image): the encoder phase's hand-over to direct latent training."""
        tex = self.levels[level]
        c, h, w = tex.shape
        if tuple(values.shape) != (h, w, c):
            raise ValueError(f"level {level} takes [{h}, {w}, {c}], got {list(values.shape)}")
        tex.copy_(values.permute(2, 0, 1))

    def export_fp16(self) -> list[np.ndarray]:
        """One float16 array [h, w, C] per level, finest first: the runtime stores latents as fp16
        textures (channels 0-3 and 4-7 in two RGBA16F mipmapped textures for C = 8)."""
        return [t.detach().permute(1, 2, 0).to("cpu", torch.float16).numpy() for t in self.levels]
