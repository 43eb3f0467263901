"""Training a NeuralMaterial against its reference (docs/design.md, 'Training'), in two phases:

1. Encoder phase. The encoder maps the filtered parameter vector at each sample's (uv, level) to a
   latent; encoder, learned frames, evaluator and sampler train together. The encoder shares what
   it learns across all texels, so the model is good everywhere after few samples per texel.
2. Fine-tuning phase. The encoder runs once over every texel of every level to fill the latent
   pyramid and is dropped; latents, frames, evaluator and sampler are then trained directly, which
   fixes what the encoder could not express (and the difference between encoding a bilinear blend
   of parameters and the bilinear blend of encoded texels that the runtime does).

A model without an encoder (the ablation's plain variant) trains its latents directly throughout.

Losses, per batch (training/data.py draws it):
- Evaluator: L1 between log(f + EPS) of prediction and target, averaged over RGB and the batch.
  log(x + eps) rather than log(1 + x): BRDF values times cosine are mostly well below 1 (a 0.5
  albedo diffuse surface gives 0.16 at normal incidence), where log(1 + x) is nearly linear and
  the loss would be a plain L1 that ignores dark texels and grazing falloffs; log(x + eps) weighs
  errors relatively (as an image metric like FLIP does after exposure) down to eps = 0.01, and
  absolutely below it, so black targets (wo below the horizon) give a bounded loss.
- Sampler: KL divergence from the learned BRDF to the sampler's pdf, with the latent and the
  learned BRDF detached: p(wo | wi) proportional to the luminance of f(wi, wo), estimated over the
  batch's directions with importance weights w = lum(f) / p_dirs (data.py), so that
  KL = const - E_p[log q] = const - sum(w log q) / sum(w). p is normalised per batch, not per wi
  (its per-wi albedo is unknown); that weights each (texel, wi) by its albedo, which changes how
  the sampler's capacity is spent, not its optimum. It runs on the first `sampler_fraction` of the
  batch: the sampler only shapes noise, and this keeps it cheap.

Schedule: Adam (0.9, 0.999, eps 1e-7) with a cosine learning rate over all iterations, from
lr_start = 1e-2 to lr_end = 1e-4, times a multiplier per parameter group: 10 for the evaluator's
first layer and the learned frames' layer, 0.1 for the latents when they are fine-tuned after the
encoder phase (1 when a model without encoder trains them from scratch), 1 for the rest. The paper
used 1e-3 -> 1e-4 over 300k iterations; a default bake here has 4000, and with the paper's rates the
2x32 evaluator stopped far from converged. Measured on flat-patch FLIP (front / specular / grazing,
training/report.py) after 2000 iterations: woven_fabric 0.089 / 0.072 / 0.110 with 1e-3, 0.044 /
0.036 / 0.079 with 3e-3, 0.038 / 0.042 / 0.068 with 1e-2. The faster first layers let the small
evaluator grow the large weights that narrow highlights need, and the learned frames follow the
mesoscale normals sooner; the gentle latent rate keeps fine-tuning (a few hundred noisy samples per
level-0 texel) from washing out what the encoder put there: on worn_plastic (3000 iterations) the
latent multiplier 0.1 gave FLIP 0.163 / 0.126 / 0.251 and held-out error 0.078 where 1 gave 0.175 /
0.190 / 0.261 and 0.088. A restart of the cosine at the fine-tuning phase (lr_restart) shook the
trained decoders and did not help.

Output start (`output_init`): before the first step the evaluator's output bias is shifted so that
its median prediction on batch 0 is the median target per channel (at least LOG_EPS). The untrained
evaluator's exp(x - 3) = 0.05 lies above almost every target of a dark material; Adam's first steps
(each parameter moves by about the learning rate, all in the same direction) then pushed the output
far below LOG_EPS, where the log loss's gradient f / (f + eps) vanishes, and it never came back:
on tests/materials/dark_lacquer every one of 3 seeds collapsed to a zero evaluator within 20 steps,
with the first layer's 10x rate or without it (so not the rate multiplier; dead ReLUs were 40-65 %,
as many as in healthy runs), with a 100-step linear warm-up of the rate on 2 of 3; starting at the
median, 0 of 3. training/watchdog.py catches what is left.

Losses (`loss`): log_l1 (above, the default), power_l1 (Bitterli et al. 2026's M(x) = 3 (x^(1/3) - 1)
on f * cos) and rel_l2 (relative L2 with the detached prediction as the scale: unbiased under noisy
targets); measured against each other in docs/baking.md, "Loss options".

Lobe energy (models with the analytic lobe, training/lobe.py): over the last `lobe_energy_fraction`
of all iterations (15 %) the loss adds `lobe_energy` times the relative L2 loss of f_net + lobe with
everything but the lobe's layer detached. The log-L1 loss fits a narrow peak whose direction
wanders from texel to texel (orange peel, swirls) with a geometric compromise, a wider and lower
lobe: car_paint's clear coat returned a 1.5x too little energy around the mirror direction facing
the light and 5x at grazing (tools/energy_by_angle.py), and its renders were 5-24 % dark. Relative
L2 converges to the mean, so the lobe takes the peak's energy (1.0x facing the light, 2.2x at
grazing); given to the whole model it also brightened everything off the peak 3-10x (rendered mean
FLIP 0.149 -> 0.167), given to the lobe alone 0.149 -> 0.087 (docs/baking.md, 'Lobe energy').

Mollification: each target averages reference evaluations at wo jittered over a cone whose
half-angle falls linearly from `mollify_degrees` to 0 over the first `mollify_fraction` of all
iterations (the paper: 10 degrees over 20k of 300k iterations, 7 %; our runs are ~100x shorter, so
the blurred start is relatively longer, 10 %, to keep narrow highlights from starving the first
steps of gradient).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Callable

import numpy as np
import torch

from neumat.renderer.images.color import LUMINANCE
from neumat.renderer.materials.reference import ReferenceMaterial
from neumat.training.data import TARGET_WALKS, Batch, BatchSource, DataConfig, Prefetcher
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig
from neumat.renderer.neural.asset import DIRECTION_ENCODINGS
from neumat.training.networks import Evaluator
from neumat.training.settings import parse_network
from neumat.training import lobe as analytic
from neumat.training.losses import LOG_EPS, LOSSES, log_correlation, log_l1, relative_l2, skill
from neumat.training.watchdog import Watchdog

VALIDATION_STEP = 1 << 40  # batch numbers from here on are never used for training
HISTORY_KEYS = ("step", "loss", "sampler_loss", "lr", "correlation")  # of a step's record, kept every log_every
CHECKPOINT_FORMAT = 2  # 2: only tensors and plain values, loadable with torch.load(weights_only=True)


@dataclass
class TrainConfig:
    """Everything that determines a training run (with the material and the seed)."""

    evaluator: str = "2x32"  # network spec: SIZE or SIZE+lobe (training/networks.py parse_network)
    directions: str = "vectors"  # the evaluator's direction features (training/frames.py)
    resolution: int = 256
    use_encoder: bool = True
    use_frames: bool = True
    encoder_iterations: int = 2000  # phase 1 (0 or use_encoder = False: no encoder phase)
    finetune_iterations: int = 2000  # phase 2 (or direct latent training without an encoder)
    batch_size: int = 16384
    target_queries: int = TARGET_WALKS
    lr_start: float = 1e-2
    lr_end: float = 1e-4
    mollify_degrees: float = 10.0
    mollify_fraction: float = 0.1
    sampler_fraction: float = 0.25
    level_rate: float = math.log(2.0)
    below_horizon: float = 0.25
    peak_fraction: float = 1.0
    lr_scale_latents: float = 0.1  # latents fine-tuned after the encoder phase (trained from scratch: 1)
    lr_scale_frames: float = 10.0  # the learned frames' layer
    lr_scale_first: float = 10.0  # the evaluator's first layer
    lr_scale_lobe: float = 10.0  # the analytic lobe's layer (like the frames': one linear layer on the latent)
    lr_restart: bool = False  # True: each phase its own cosine; False: one cosine over all iterations
    output_init: bool = True  # start the evaluator's output at the first batch's median target
    loss: str = "log_l1"  # a key of LOSSES
    # The lobe's energy term (module doc, 'Lobe energy'): its weight, and the share of all iterations,
    # at the end, during which it trains the lobe.
    lobe_energy: float = 1.0
    lobe_energy_fraction: float = 0.15
    # True: during that phase the lobe learns from the energy term alone (the main loss sees it
    # detached). Measured on car_paint: the grazing tile 0.123 -> 0.094, the close-ups 0.073 -> 0.104,
    # mean FLIP 0.0887 -> 0.0929 (docs/baking.md, "More of the energy term"), so off.
    lobe_energy_alone: bool = False
    # False: the energy term trains the lobe's f90 and alpha only, its f0 (normal incidence) keeps
    # the log-L1 fit. Measured on car_paint as a 1000-step polish of the bundled asset: the grazing
    # tile 0.124 -> 0.097, close-ups unchanged (with f0 free they went 0.073 -> 0.109: f0 took the
    # flakes' missing blue), mean 0.083 -> 0.076 (docs/baking.md, "Lobe energy without f0").
    lobe_energy_f0: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        parse_network(self.evaluator)  # ValueError naming the choices
        if self.directions not in DIRECTION_ENCODINGS:
            raise ValueError(f"unknown direction encoding '{self.directions}' (choose from "
                             f"{', '.join(DIRECTION_ENCODINGS)})")
        if self.resolution < 1 or self.resolution & (self.resolution - 1):
            raise ValueError(f"resolution must be a power of two, got {self.resolution}")
        if self.encoder_iterations < 0 or self.finetune_iterations < 0 or self.total_iterations < 1:
            raise ValueError("iteration counts must be >= 0 with at least one iteration in all")
        if self.batch_size < 1 or self.target_queries < 1:
            raise ValueError("batch_size and target_queries must be >= 1")
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss '{self.loss}' (choose from {', '.join(LOSSES)})")
        if not (self.lobe_energy >= 0 and 0 <= self.lobe_energy_fraction <= 1):
            raise ValueError("lobe_energy must be >= 0 and lobe_energy_fraction in [0, 1]")

    @property
    def encoder_steps(self) -> int:
        """Phase-1 iterations actually run (0 without an encoder)."""
        return self.encoder_iterations if self.use_encoder else 0

    @property
    def total_iterations(self) -> int:
        return (self.encoder_iterations if self.use_encoder else 0) + self.finetune_iterations

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def cosine_lr(t: float, start: float, end: float) -> float:
    """Cosine from `start` at t = 0 to `end` at t = 1."""
    t = min(max(t, 0.0), 1.0)
    return end + 0.5 * (start - end) * (1.0 + math.cos(math.pi * t))




def luminance(rgb: torch.Tensor) -> torch.Tensor:
    return rgb @ rgb.new_tensor(LUMINANCE)


class Trainer:
    """Owns the model, the optimiser and the step counter; `run` trains up to a step."""

    def __init__(self, config: TrainConfig, reference: ReferenceMaterial, device: str | torch.device = "cpu"
                 ) -> None:
        self.config = config
        self.reference = reference
        self.device = torch.device(device)
        torch.manual_seed(config.seed)
        self.model = NeuralMaterial(NeuralMaterialConfig(
            resolution=config.resolution, evaluator=config.evaluator, directions=config.directions,
            use_frames=config.use_frames,
            use_encoder=config.encoder_steps > 0, encoder_inputs=reference.width)).to(self.device)
        if reference.resolution != (config.resolution, config.resolution):
            raise ValueError(f"the reference's level 0 is {reference.resolution}, the config asks for "
                             f"{config.resolution}")
        self.source = BatchSource(reference, DataConfig(config.batch_size, config.target_queries,
                                                        config.level_rate, config.below_horizon,
                                                        config.peak_fraction),
                                  config.seed, with_params=config.encoder_steps > 0)
        self.step = 0
        self.history: list[dict] = []  # one record per logged step
        self.watchdog = Watchdog()
        self.timing = {"steps": 0, "step_s": 0.0, "wait_s": 0.0}  # this process's steps: torch vs waiting for batches
        self._last_inputs = None  # (latent, wi, wo) of the last step, for the watchdog's dead-unit count
        self.optimizer = self._make_optimizer()

    # --- schedule -----------------------------------------------------------------------------

    @property
    def in_encoder_phase(self) -> bool:
        return self.model.encoder is not None

    def phase_of(self, step: int) -> int:
        return 1 if step < self.config.encoder_steps else 2

    def lr_at(self, step: int) -> float:
        c = self.config
        if not c.lr_restart:
            return cosine_lr(step / max(1, c.total_iterations - 1), c.lr_start, c.lr_end)
        if step < c.encoder_steps:
            return cosine_lr(step / max(1, c.encoder_steps - 1), c.lr_start, c.lr_end)
        return cosine_lr((step - c.encoder_steps) / max(1, c.finetune_iterations - 1), c.lr_start, c.lr_end)

    def cone_at(self, step: int) -> float:
        """Mollification half-angle (radians) of batch `step`."""
        c = self.config
        span = c.mollify_fraction * c.total_iterations
        if span <= 0:
            return 0.0
        return math.radians(c.mollify_degrees) * max(0.0, 1.0 - step / span)

    def lobe_energy_at(self, step: int) -> float:
        """The lobe energy term's weight at `step`: lobe_energy over the last lobe_energy_fraction
        of all iterations, else 0."""
        c = self.config
        start = (1.0 - c.lobe_energy_fraction) * c.total_iterations
        return c.lobe_energy if c.lobe_energy_fraction > 0 and step >= start else 0.0

    def plan(self, step: int) -> tuple[float, bool]:
        return self.cone_at(step), self.phase_of(step) == 1

    def _lr_scale(self, name: str) -> float:
        """The learning-rate multiplier of a parameter (TrainConfig's lr_scale_* fields)."""
        c = self.config
        finetuning = c.encoder_steps > 0 and not self.in_encoder_phase
        if name.startswith("latents."):
            return c.lr_scale_latents if finetuning else 1.0
        if name.startswith("frames."):
            return c.lr_scale_frames
        if name.startswith("lobe."):
            return c.lr_scale_lobe
        if name.startswith("evaluator.mlp.layers.0."):
            return c.lr_scale_first
        return 1.0

    def _make_optimizer(self) -> torch.optim.Adam:
        m = self.model
        groups: dict[float, list] = {}
        for name, p in m.named_parameters():
            if self.in_encoder_phase and name.startswith("latents."):
                continue
            groups.setdefault(self._lr_scale(name), []).append(p)
        # fused: one kernel per step instead of a dozen ops per parameter tensor; a fine-tuning step
        # at 256 x 256 took 69-91 ms instead of 90-112 ms on the shared 2 cores (3 interleaved runs).
        return torch.optim.Adam([{"params": ps, "lr_scale": k} for k, ps in groups.items()],
                                lr=self.config.lr_start, betas=(0.9, 0.999), eps=1e-7, fused=True)

    # --- phases -------------------------------------------------------------------------------

    @torch.no_grad()
    def fill_latents_from_encoder(self, chunk: int = 65536) -> None:
        """Phase 1 -> 2: encode every texel of every level into the pyramid, then drop the encoder."""
        m = self.model
        for level in range(m.latents.num_levels):
            params = self.source.texel_parameters(level).to(self.device)
            h, w, k = params.shape
            flat = params.reshape(-1, k)
            out = torch.cat([m.encode(flat[i:i + chunk]) for i in range(0, flat.shape[0], chunk)])
            m.latents.fill_from(level, out.reshape(h, w, -1))
        m.encoder = None
        m.config.use_encoder = False
        self.optimizer = self._make_optimizer()

    # --- one step -----------------------------------------------------------------------------

    def _latent(self, batch: Batch) -> torch.Tensor:
        """The batch's latents: from the encoder in phase 1, else looked up in the pyramid."""
        if self.in_encoder_phase:
            return self.model.encode(batch.params)
        return self.model.latents.sample_level(batch.uv, batch.level)

    def losses(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(evaluator loss, lobe energy term (weighted; 0 outside its phase), sampler loss, the
        evaluator's prediction [N, 3])."""
        m = self.model
        latent = self._latent(batch)
        f_net, f_lobe, dirs = m.eval_parts(latent, batch.wi, batch.wo)
        weight = self.lobe_energy_at(self.step) if f_lobe is not None else 0.0
        alone = weight > 0 and self.config.lobe_energy_alone
        f = f_net if f_lobe is None else f_net + (f_lobe.detach() if alone else f_lobe)
        self._last_inputs = (latent.detach(), batch.wi, batch.wo)
        loss_eval = LOSSES[self.config.loss](f, batch.target)
        loss_energy = f.new_zeros(())
        if weight > 0:
            # only the lobe's layer learns from it: network, latents and frames detached
            params = m.lobe(latent.detach())
            if not self.config.lobe_energy_f0:
                params = replace(params, f0=params.f0.detach())
            lobe_only = analytic.evaluate(params, dirs[0].detach(), dirs[1].detach())
            loss_energy = weight * relative_l2(f_net.detach() + lobe_only, batch.target)
        n_s = max(1, int(round(self.config.sampler_fraction * batch.uv.shape[0])))
        s = slice(0, n_s)
        q = m.pdf_from_latent(latent[s].detach(), batch.wi[s], batch.wo[s])
        w = luminance(f[s].detach()) / batch.p_dirs[s]
        w = w / w.sum().clamp_min(1e-30)
        loss_sampler = -(w * torch.log(q.clamp_min(1e-30))).sum()
        return loss_eval, loss_energy, loss_sampler, f

    @torch.no_grad()
    def _init_output(self, batch: Batch) -> None:
        """Shifts the evaluator's output bias so that its median prediction on `batch` is the
        median target per channel (at least LOG_EPS)."""
        m = self.model
        f = m.eval_from_latent(self._latent(batch), batch.wi, batch.wo)
        shift = torch.log(batch.target.median(0).values.clamp_min(LOG_EPS)) - torch.log(f.median(0).values)
        m.evaluator.mlp.layers[-1].bias += shift

    def train_step(self, batch: Batch) -> dict:
        lr = self.lr_at(self.step) * self.watchdog.lr_factor
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        batch = batch.to(self.device)
        if self.step == 0 and self.config.output_init:
            self._init_output(batch)
        loss_eval, loss_energy, loss_sampler, f = self.losses(batch)
        self.optimizer.zero_grad(set_to_none=True)
        (loss_eval + loss_energy + loss_sampler).backward()
        self.optimizer.step()
        self.step += 1
        f = f.detach()
        # "loss" is the evaluator's loss alone: the lobe energy term's relative L2 jumps to 1e3 on a
        # batch where one grazing peak meets a masked lobe, which would read as divergence.
        return {"step": self.step, "loss": loss_eval.item(), "lobe_energy_loss": loss_energy.item(),
                "sampler_loss": loss_sampler.item(), "lr": lr,
                "correlation": log_correlation(f, batch.target).item(), "mean_prediction": f.mean().item(),
                "mean_target": batch.target.mean().item()}

    def _dead_unit_inputs(self) -> torch.Tensor:
        latent, wi, wo = self._last_inputs
        with torch.no_grad():
            return Evaluator.inputs(self.model.direction_features(latent, wi, wo), latent)

    def run(self, until: int | None = None, callback: Callable[[dict], None] | None = None,
            log_every: int = 10, prefetch: int = 2) -> None:
        """Trains from the current step up to `until` (default: the config's total). `callback`
        gets each step's record after the step (it may raise KeyboardInterrupt to stop: the trainer
        is then consistent at a step boundary)."""
        until = self.config.total_iterations if until is None else min(until, self.config.total_iterations)
        while self.step < until:
            if self.in_encoder_phase and self.step >= self.config.encoder_steps:
                self.fill_latents_from_encoder()
            if self.watchdog.needs_start(self):
                self.watchdog.start(self)
            stop = until if self.phase_of(self.step) == 2 else min(until, self.config.encoder_steps)
            feeder = Prefetcher(self.source, self.step, stop, self.plan, depth=prefetch)
            try:
                while self.step < stop:
                    start = time.perf_counter()
                    batch = feeder.get(self.step)
                    got = time.perf_counter()
                    record = self.train_step(batch)
                    record["seconds"] = time.perf_counter() - got
                    record["wait_s"] = got - start  # for a batch the prefetcher had not finished
                    self.timing["steps"] += 1
                    self.timing["step_s"] += record["seconds"]
                    self.timing["wait_s"] += record["wait_s"]
                    record["phase"] = self.phase_of(self.step - 1)
                    if record["step"] % log_every == 0 or record["step"] == until:
                        self.history.append({k: record[k] for k in HISTORY_KEYS})
                    if self.watchdog.observe(self, record, self._dead_unit_inputs):
                        break  # restored an earlier step: draw its batches again
                    if callback is not None:
                        callback(record)
            finally:
                feeder.close()
        if self.in_encoder_phase and self.step >= self.config.total_iterations:
            self.fill_latents_from_encoder()  # a run that is all encoder phase still ends as a pyramid

    def speed_summary(self) -> str:
        """One line: iterations per second and where an iteration's time went."""
        t = self.timing
        n = max(1, t["steps"])
        total = t["step_s"] + t["wait_s"]
        return (f"{t['steps']} iterations, {t['steps'] / max(total, 1e-9):.2f} it/s: torch step "
                f"{1e3 * t['step_s'] / n:.0f} ms, waiting for reference batches {1e3 * t['wait_s'] / n:.0f} ms "
                f"per iteration (torch on {self.device}, {torch.get_num_threads()} threads)")

    # --- evaluation ---------------------------------------------------------------------------

    def validation_batch(self, n: int = 16384, queries: int = 16) -> Batch:
        """Held-out samples (a batch number training never draws), with less noisy targets."""
        src = BatchSource(self.reference, DataConfig(n, queries, self.config.level_rate, self.config.below_horizon,
                                                     self.config.peak_fraction),
                          self.config.seed, with_params=False)
        return src.batch(VALIDATION_STEP)

    @torch.no_grad()
    def validate(self, batch: Batch | None = None) -> dict:
        """Held-out error of the pyramid model: log-L1 (the training loss) and the mean relative
        error of eval on samples with wo above the horizon."""
        batch = (batch or self.validation_batch()).to(self.device)
        m = self.model
        if self.in_encoder_phase:
            raise RuntimeError("validate() evaluates the latent pyramid; finish the encoder phase first")
        f = m.eval_from_latent(m.latents.sample_level(batch.uv, batch.level), batch.wi, batch.wo)
        above = batch.wo[:, 2] > 0
        rel = ((f - batch.target).abs().sum(-1) / (batch.target.sum(-1) + 3 * LOG_EPS))[above].mean()
        return {"log_l1": log_l1(f, batch.target).item(), "relative_error": rel.item(),
                "skill": skill(f, batch.target).item()}

    # --- checkpoints --------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"format": CHECKPOINT_FORMAT, "config": asdict(self.config), "step": self.step,
                "has_encoder": self.in_encoder_phase, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                "numpy_rng": _numpy_rng_state(), "history": list(self.history), "watchdog": self.watchdog.state()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint format {state.get('format')} is not {CHECKPOINT_FORMAT}")
        if not state["has_encoder"] and self.in_encoder_phase:
            self.model.encoder = None
            self.model.config.use_encoder = False
        self.model.load_state_dict(state["model"])
        self.optimizer = self._make_optimizer()
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = state["step"]
        self.history = list(state["history"])
        self.watchdog.load_state(state.get("watchdog", {}))
        torch.set_rng_state(state["torch_rng"])
        _set_numpy_rng_state(state["numpy_rng"])


def _numpy_rng_state() -> dict:
    """numpy's global RNG state as tensors and plain values (a checkpoint holds nothing else: loading
    it then runs no code)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _set_numpy_rng_state(state: dict) -> None:
    np.random.set_state((state["name"], state["keys"].numpy().astype(np.uint32), state["pos"],
                         state["has_gauss"], state["cached_gaussian"]))
