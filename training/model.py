"""A neural material (docs/design.md, 'Neural model'): latent pyramid + learned shading frames + evaluator +
importance sampler, with the optional encoder of the encoder phase.

Directions are in the shading frame (docs/design.md, 'Conventions'). Methods taking (uv, lod) look the latent up
in the pyramid, each call with its own stochastic level pick; the *_from_latent methods take a latent
directly (from one shared lookup, or from the encoder while it is being trained). A `generator`
passed for the level pick must live on the inputs' device.
"""

from dataclasses import dataclass

import torch
from torch import nn

from neumat.training import lobe as analytic
from neumat.training import sampler as mixture
from neumat.training.frames import ShadingFrames, features, local
from neumat.training.latents import LatentPyramid
from neumat.renderer.neural.asset import DIRECTION_ENCODINGS
from neumat.training.networks import Encoder, Evaluator
from neumat.training.settings import DEFAULT_EVALUATOR, parse_network


@dataclass
class NeuralMaterialConfig:
    resolution: int  # finest latent level, a power of two
    latent_channels: int = 8
    evaluator: str = DEFAULT_EVALUATOR  # a network spec: a key of networks.EVALUATOR_SIZES, "+lobe" for the lobe
    directions: str = "vectors"  # the evaluator's direction features: networks.DIRECTION_ENCODINGS
    use_frames: bool = True  # off: the evaluator sees wi, wo in the shading frame twice (ablation)
    use_encoder: bool = False  # on: an Encoder from the K layer parameters is part of the model
    encoder_inputs: int = 0  # K (StackLayout.width), required with use_encoder
    latent_init_std: float = 0.1


class NeuralMaterial(nn.Module):
    def __init__(self, config: NeuralMaterialConfig) -> None:
        super().__init__()
        self.config = config
        c = config.latent_channels
        self.latents = LatentPyramid(config.resolution, c, config.latent_init_std)
        self.frames = ShadingFrames(c) if config.use_frames else None
        self.evaluator = Evaluator(config.evaluator, c)
        _, with_lobe = parse_network(config.evaluator)
        self.lobe = analytic.Lobe(c) if with_lobe else None
        if config.directions not in DIRECTION_ENCODINGS:
            raise ValueError(f"unknown direction encoding '{config.directions}' ({', '.join(DIRECTION_ENCODINGS)})")
        self.sampler = mixture.Sampler(c)
        if config.use_encoder and config.encoder_inputs <= 0:
            raise ValueError("use_encoder needs encoder_inputs = K, the per-texel parameter count")
        self.encoder = Encoder(config.encoder_inputs, c) if config.use_encoder else None

    def latent(self, uv: torch.Tensor, lod: torch.Tensor,
               generator: torch.Generator | None = None) -> torch.Tensor:
        return self.latents.sample(uv, lod, generator)

    def encode(self, layer_params: torch.Tensor) -> torch.Tensor:
        """Latents [N, C] from per-texel layer parameters [N, K] (encoder phase only)."""
        if self.encoder is None:
            raise RuntimeError("this material was configured without an encoder")
        return self.encoder(layer_params)

    def local_directions(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(wi, wo) in learned frame 1, then frame 2 (the shading frame twice without frames)."""
        if self.frames is None:
            return wi, wo, wi, wo
        return local(self.frames(latent), wi, wo)

    def direction_features(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """The evaluator's 12 direction features [N, 12] (training/frames.py)."""
        return features(self.local_directions(latent, wi, wo), self.config.directions)

    def eval_parts(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...]]:
        """(the evaluator network's f * |cos theta_o| [N, 3], the analytic lobe's or None, the local
        directions): the parts that eval_from_latent sums, for a loss that trains them apart."""
        dirs = self.local_directions(latent, wi, wo)
        f_net = self.evaluator(features(dirs, self.config.directions), latent)
        f_lobe = None if self.lobe is None else analytic.evaluate(self.lobe(latent), dirs[0], dirs[1])
        return f_net, f_lobe, dirs

    def eval_from_latent(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        """RGB f(wi, wo) * |cos theta_o| [N, 3]: the evaluator, plus the analytic lobe if any."""
        f_net, f_lobe, _ = self.eval_parts(latent, wi, wo)
        return f_net if f_lobe is None else f_net + f_lobe

    def pdf_from_latent(self, latent: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor) -> torch.Tensor:
        return mixture.pdf(self.sampler.decode(latent, wi), wi, wo)

    def sample_from_latent(self, latent: torch.Tensor, wi: torch.Tensor,
                           u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(wo [N, 3], weight = eval / pdf [N, 3], pdf [N]) from uniform u [N, 3]; weight is 0 where
        pdf is 0."""
        wo, p = mixture.sample(self.sampler.decode(latent, wi), wi, u)
        f = self.eval_from_latent(latent, wi, wo)
        weight = torch.where(p[..., None] > 0, f / p.clamp_min(1e-30)[..., None], torch.zeros_like(f))
        return wo, weight, p

    def evaluate(self, uv: torch.Tensor, lod: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """eval_from_latent at a pyramid lookup. (Not named `eval`: that is nn.Module's mode switch.)"""
        return self.eval_from_latent(self.latent(uv, lod, generator), wi, wo)

    def pdf(self, uv: torch.Tensor, lod: torch.Tensor, wi: torch.Tensor, wo: torch.Tensor,
            generator: torch.Generator | None = None) -> torch.Tensor:
        return self.pdf_from_latent(self.latent(uv, lod, generator), wi, wo)

    def sample(self, uv: torch.Tensor, lod: torch.Tensor, wi: torch.Tensor, u: torch.Tensor,
               generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """sample_from_latent at one pyramid lookup, shared by the sampler and the evaluator."""
        return self.sample_from_latent(self.latent(uv, lod, generator), wi, u)
