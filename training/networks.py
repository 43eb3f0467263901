"""The paper's MLPs (docs/design.md, 'Neural model'): the encoder that turns layer parameters into latents and the
evaluator that decodes a latent and two directions into RGB f * cos; plus the flat weight layout
the asset export and the generated Slang decoders read.

Weight layout: parameters in module registration order (layer by layer, weight then bias); a Linear
weight is [out, in] row-major, so W[o, i] sits at offset + o * in + i.
"""

import numpy as np
import torch
from torch import nn

from neumat.renderer.neural.asset import DIRECTION_FEATURES
from neumat.training.settings import DEFAULT_EVALUATOR, EVALUATOR_SIZES, parse_network

ENCODER_HIDDEN = [64, 64, 64, 64]


class MLP(nn.Module):
    """Linear layers with ReLU between them and none after the last."""

    def __init__(self, in_features: int, hidden: list[int], out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        sizes = [in_features, *hidden, out_features]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        self.layers = nn.Sequential(*layers[:-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Encoder(nn.Module):
    """K layer parameters -> C latent channels (training only: it fills the pyramid, then is dropped)."""

    def __init__(self, in_features: int, latent_channels: int = 8) -> None:
        super().__init__()
        self.mlp = MLP(in_features, ENCODER_HIDDEN, latent_channels)

    def forward(self, params: torch.Tensor) -> torch.Tensor:
        return self.mlp(params)


class Evaluator(nn.Module):
    """Input [12 direction features, C latent] -> RGB f(wi, wo) * |cos theta_o|.

    The output exp(x - 3) is positive by construction, and the offset starts the untrained network
    near a dim BRDF (exp(-3) ~ 0.05) instead of an over-bright one.
    """

    def __init__(self, size: str = DEFAULT_EVALUATOR, latent_channels: int = 8) -> None:
        super().__init__()
        size, _ = parse_network(size)  # the lobe, if any, is the model's (training/lobe.py)
        self.size = size
        self.mlp = MLP(DIRECTION_FEATURES + latent_channels, EVALUATOR_SIZES[size], 3)

    def forward(self, directions: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return torch.exp(self.mlp(self.inputs(directions, latent)) - 3.0)

    @staticmethod
    def inputs(directions: torch.Tensor, latent: torch.Tensor) -> torch.Tensor:
        return torch.cat([directions, latent], dim=-1)


def weight_layout(module: nn.Module) -> list[dict]:
    """One entry {name, shape, offset, size} per parameter, in the order flatten() writes them."""
    out, offset = [], 0
    for name, p in module.named_parameters():
        out.append({"name": name, "shape": tuple(p.shape), "offset": offset, "size": p.numel()})
        offset += p.numel()
    return out


def flatten(module: nn.Module) -> np.ndarray:
    """All parameters as one float32 vector laid out as weight_layout() describes."""
    return np.concatenate([p.detach().to("cpu", torch.float32).reshape(-1).numpy()
                           for p in module.parameters()])
