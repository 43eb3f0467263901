"""Online training batches from the reference layered material (docs/design.md, 'Training').

Every batch is drawn fresh from the reference BSDF on the Vulkan device, so the network never sees
the same sample twice and a bake needs no dataset on disk. A batch of N samples holds:

- uv: uniform over the texture (it tiles).
- level: an integer mip level drawn from an exponential distribution biased to the fine levels:
  lod ~ Exp(rate), level = min(floor(lod), last level), so with the default rate ln 2 level l is
  drawn with probability 2^-(l+1) (the last level takes the tail). A level has 4x fewer texels
  than the one below, so coarse texels still see 2^l times more samples each than level 0's.
- wi, wo: from half and difference vectors drawn uniformly in Rusinkiewicz's angles
  (theta_h, phi_h, theta_d, phi_d uniform in [0, pi/2] x [0, 2 pi) x [0, pi/2] x [0, 2 pi)), then
  wi = R(h) d and wo = reflect(wi, h). Uniform angles put a density ~ 1 / sin(theta_h) on the half
  vector, so narrow specular peaks get many samples while the whole domain stays covered
  (`peak_fraction` < 1 draws that share of half vectors uniform in solid angle instead: an option,
  which did not help the flat-patch error in our tests, so it is off by default). Samples
  with wi below the horizon are redrawn; those with wo below it are kept with probability
  `below_horizon` (their target is 0: the net must learn to stay dark there).
- target: eval(wi, wo) = f * |cos theta_o| of the reference at (uv, level), averaged over
  `target_queries` random walks. While mollifying, each walk is its own query with its own wo
  jittered uniformly over a cone of half-angle `cone` around wo: that is the paper's mollification
  (the cone shrinks from 10 degrees to 0 over the first part of training; see trainer.py). Without
  the cone the walks are one query of `target_queries` walks: on worn_plastic at 256 x 256 that
  took 178 ms where 4 queries of one walk took 336 ms (16384 samples, lavapipe on the shared 2 cores),
  and the reference's stratified walks within one query make the target less noisy (median
  relative error against 256 walks 0.005 instead of 0.007; docs/baking.md, "Bake speed").
  TARGET_WALKS = 16 walks per target, because the log-space L1 loss converges to the median of its
  targets, not their mean, and the walks' sum is right-skewed: the median of 4-walk targets sits
  2-8 % below their mean per channel (glazed_ceramic 1.025 / 1.076 / 1.035), of 16-walk ones 0.5-2 %
  (1.005 / 1.018 / 1.008), and the bake's evaluator inherits that darkening over the whole image.
  16 walks took glazed_ceramic's rendered mean FLIP from 0.086 to 0.040, and the reference still
  keeps ahead of the torch step (it waited 2 ms per iteration; docs/baking.md, "Target walks").
- params (for the encoder): the filtered parameter vector at (uv, level), bilinear with wrap in
  that level of the prefiltered parameter pyramid, computed on the host from the same pyramid the
  device uses (identical to reference.fetch_parameters at an integer lod, without a round trip),
  standardised per channel with level 0's mean and standard deviation.
- p_dirs: the density of (wi, wo) under the direction sampling, per unit solid angle squared,
  up to a factor that depends on wi only: 1 / (4 pi^4 sin theta_h sin theta_d cos theta_d) (the
  map (h, d) -> (wi, wo) has Jacobian dw_i dw_o = 4 cos theta_d dw_h dw_d). The sampler's KL loss
  importance-weights by f / p_dirs.

Coarse-level targets. A coarse latent texel must reproduce the BRDF filtered over its footprint.
Two ways to get a target: average many reference evaluations at level 0 over a Gaussian footprint,
or evaluate the reference once at the matching level of its prefiltered (LEAN) parameter pyramid.
We do the latter: it is what the reference renderer itself shows at that level of detail (its
ray-footprint LOD reads the same pyramid, so neural and reference renders agree at every distance),
it costs one query instead of 4^level for a converged footprint average (a level-5 texel covers
1024 level-0 texels; a handful of jittered samples would give a very noisy, median-biased target
under the log-L1 loss), and the LEAN filtering already turns normal variation into roughness, the
effect that a plain average of parameters would lose.

Determinism: batch `step` is a pure function of (seed, step): numpy's generator is seeded with
[seed, step] and the device's random walks with a 32-bit hash of both, so a resumed bake sees
exactly the batches an uninterrupted one would, whatever the prefetching.
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass

import numpy as np
import torch

from neumat.renderer.materials import reference as ref

# Fraction of extra candidates drawn so that one round of rejection (wi below the horizon, wo below
# it and not kept) almost always leaves N samples; a second round fills any shortfall.
_OVERDRAW = 1.6


@dataclass
class Batch:
    uv: torch.Tensor  # [N, 2]
    level: torch.Tensor  # [N] long
    wi: torch.Tensor  # [N, 3]
    wo: torch.Tensor  # [N, 3]
    target: torch.Tensor  # [N, 3]
    p_dirs: torch.Tensor  # [N]
    params: torch.Tensor | None  # [N, K] standardised encoder input, or None

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(*(None if t is None else t.to(device, non_blocking=True) for t in
                       (self.uv, self.level, self.wi, self.wo, self.target, self.p_dirs, self.params)))


def step_seed(seed: int, step: int) -> int:
    """A 32-bit seed for the device's random walks of batch `step` (splitmix-style mixing)."""
    x = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2**64 - 1)
    x ^= x >> 31
    x = (x * 0xD6E8FEEB86659FD9) & (2**64 - 1)
    return int(x >> 32)


def _rotate_from_z(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """v [N, 3] expressed in a frame whose z is `axis` [N, 3] (unit), back in world coordinates."""
    # Duff et al. 2017 orthonormal basis (branchless, valid for every axis).
    sign = np.where(axis[:, 2] >= 0, 1.0, -1.0)
    a = -1.0 / (sign + axis[:, 2])
    b = axis[:, 0] * axis[:, 1] * a
    t = np.stack([1.0 + sign * axis[:, 0] ** 2 * a, sign * b, -sign * axis[:, 0]], axis=-1)
    s = np.stack([b, sign + axis[:, 1] ** 2 * a, -axis[:, 1]], axis=-1)
    return v[:, :1] * t + v[:, 1:2] * s + v[:, 2:3] * axis


def sample_directions(rng: np.random.Generator, n: int, below_horizon: float = 0.25, peak_fraction: float = 1.0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """wi, wo [n, 3] float64 from Rusinkiewicz angles, and their density p_dirs [n] (module doc).
    theta_h is uniform in angle with probability `peak_fraction`, else uniform in solid angle
    (cos theta_h uniform); the other angles are uniform. wi.z > 0 always; samples with wo.z <= 0
    are kept with probability `below_horizon`."""
    out_wi, out_wo, out_p, have = [], [], [], 0
    while have < n:
        m = int((n - have) * _OVERDRAW) + 16
        th = np.where(rng.random(m) < peak_fraction, rng.random(m) * (0.5 * np.pi), np.arccos(1.0 - rng.random(m)))
        ph = rng.random(m) * (2 * np.pi)
        td, pd = rng.random(m) * (0.5 * np.pi), rng.random(m) * (2 * np.pi)
        h = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=-1)
        d = np.stack([np.sin(td) * np.cos(pd), np.sin(td) * np.sin(pd), np.cos(td)], axis=-1)
        # wi = R_z(phi_h) R_y(theta_h) d: rotate d from the half vector's frame to the surface's.
        ct, st, cp, sp = np.cos(th), np.sin(th), np.cos(ph), np.sin(ph)
        x = ct * d[:, 0] + st * d[:, 2]
        z = -st * d[:, 0] + ct * d[:, 2]
        wi = np.stack([cp * x - sp * d[:, 1], sp * x + cp * d[:, 1], z], axis=-1)
        wo = 2.0 * np.cos(td)[:, None] * h - wi
        keep = (wi[:, 2] > 1e-4) & ((wo[:, 2] > 0) | (rng.random(m) < below_horizon))
        # Density of h per solid angle: the mixture of 1 / ((pi / 2) 2 pi sin theta_h) and 1 / (2 pi).
        sin_th = np.maximum(np.sin(th), 1e-6)
        p_h = peak_fraction / (np.pi**2 * sin_th) + (1.0 - peak_fraction) / (2 * np.pi)
        p_d = 1.0 / (np.pi**2 * np.maximum(np.sin(td), 1e-6))
        p = p_h * p_d / (4.0 * np.maximum(np.cos(td), 1e-6))
        out_wi.append(wi[keep])
        out_wo.append(wo[keep])
        out_p.append(p[keep])
        have += int(keep.sum())
    wi, wo, p = (np.concatenate(a)[:n] for a in (out_wi, out_wo, out_p))
    # Renormalise: float64 rounding, so the device sees unit vectors.
    wi /= np.linalg.norm(wi, axis=1, keepdims=True)
    wo /= np.linalg.norm(wo, axis=1, keepdims=True)
    return wi, wo, p


def jitter_in_cone(rng: np.random.Generator, w: np.ndarray, half_angle: float) -> np.ndarray:
    """Each direction of w [N, 3] moved to a point uniform (in solid angle) in the cone of
    `half_angle` radians around it."""
    if half_angle <= 0:
        return w
    n = w.shape[0]
    cos_a = 1.0 - rng.random(n) * (1.0 - math.cos(half_angle))
    sin_a = np.sqrt(np.maximum(0.0, 1.0 - cos_a * cos_a))
    phi = rng.random(n) * (2 * np.pi)
    local = np.stack([sin_a * np.cos(phi), sin_a * np.sin(phi), cos_a], axis=-1)
    return _rotate_from_z(local, w)


def sample_levels(rng: np.random.Generator, n: int, num_levels: int, rate: float) -> np.ndarray:
    """Integer levels [n]: floor of an exponential with `rate`, clamped to the last level."""
    lod = rng.exponential(1.0 / rate, n)
    return np.minimum(np.floor(lod), num_levels - 1).astype(np.int64)


def bilinear_levels(pyramid: list[np.ndarray], uv: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Bilinear, wrapped lookups [N, K] in the levels [h, w, K] of `pyramid`, each query in its own
    level (texel centres at half-integers, u along columns, v along rows, as the device fetches)."""
    k = pyramid[0].shape[2]
    out = np.empty((uv.shape[0], k), np.float32)
    for lvl in np.unique(level):
        sel = np.nonzero(level == lvl)[0]
        tex = pyramid[lvl]
        h, w = tex.shape[:2]
        x = uv[sel, 0] * w - 0.5
        y = uv[sel, 1] * h - 0.5
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = (x - x0)[:, None], (y - y0)[:, None]
        i0, j0 = x0.astype(np.int64) % w, y0.astype(np.int64) % h
        i1, j1 = (i0 + 1) % w, (j0 + 1) % h
        out[sel] = ((1 - fy) * ((1 - fx) * tex[j0, i0] + fx * tex[j0, i1])
                    + fy * ((1 - fx) * tex[j1, i0] + fx * tex[j1, i1]))
    return out


TARGET_WALKS = 16  # walks per training target (module doc)


@dataclass
class DataConfig:
    batch_size: int = 16384
    target_queries: int = TARGET_WALKS  # walks averaged per target (each with its own cone jitter while mollifying)
    level_rate: float = math.log(2.0)  # rate of the exponential the mip level is drawn from
    below_horizon: float = 0.25  # probability of keeping a sample whose wo is below the horizon
    peak_fraction: float = 1.0  # share of half vectors drawn uniform in angle (the rest: in solid angle)


class ParameterStandardiser:
    """Per-channel standardisation of the encoder's input, from level 0 of the parameter pyramid."""

    def __init__(self, level0: np.ndarray) -> None:
        flat = level0.reshape(-1, level0.shape[-1]).astype(np.float64)
        self.mean = flat.mean(0).astype(np.float32)
        std = flat.std(0)
        self.std = np.where(std > 1e-6, std, 1.0).astype(np.float32)

    def __call__(self, params: np.ndarray) -> np.ndarray:
        return ((params - self.mean) / self.std).astype(np.float32)


class BatchSource:
    """Draws training batches from a ReferenceMaterial; `batch(step, cone)` is deterministic."""

    def __init__(self, reference: ref.ReferenceMaterial, config: DataConfig, seed: int,
                 with_params: bool = True) -> None:
        self.reference = reference
        self.config = config
        self.seed = seed
        self.num_levels = len(reference.pyramid)
        self.with_params = with_params
        self.standardise = ParameterStandardiser(reference.pyramid[0])
        self.std_pyramid = [self.standardise(level) for level in reference.pyramid]

    def batch(self, step: int, cone: float = 0.0, with_params: bool | None = None) -> Batch:
        """Batch number `step`; `cone` is the mollification half-angle in radians."""
        cfg = self.config
        n = cfg.batch_size
        rng = np.random.default_rng([self.seed, step])
        uv = rng.random((n, 2))
        level = sample_levels(rng, n, self.num_levels, cfg.level_rate)
        wi, wo, p_dirs = sample_directions(rng, n, cfg.below_horizon, cfg.peak_fraction)
        m = cfg.target_queries
        if cone > 0:  # each walk its own jittered wo: m queries of one walk
            wo_q = np.concatenate([jitter_in_cone(rng, wo, cone) for _ in range(m)])
            f = self.reference.evaluate(np.tile(uv, (m, 1)).astype(np.float32),
                             np.tile(wi, (m, 1)).astype(np.float32), wo_q.astype(np.float32),
                             np.tile(level, m).astype(np.float32), n_walks=1, seed=step_seed(self.seed, step))
            target = f.reshape(m, n, 3).mean(0)
        else:  # one query of m walks: half the time, and its stratified walks are less noisy
            target = self.reference.evaluate(uv.astype(np.float32), wi.astype(np.float32),
                                  wo.astype(np.float32), level.astype(np.float32), n_walks=m,
                                  seed=step_seed(self.seed, step))
        target = np.where(np.isfinite(target), np.maximum(target, 0.0), 0.0)
        params = None
        if self.with_params if with_params is None else with_params:
            params = torch.from_numpy(bilinear_levels(self.std_pyramid, uv, level))
        return Batch(torch.from_numpy(uv.astype(np.float32)), torch.from_numpy(level),
                     torch.from_numpy(wi.astype(np.float32)), torch.from_numpy(wo.astype(np.float32)),
                     torch.from_numpy(target.astype(np.float32)), torch.from_numpy(p_dirs.astype(np.float32)),
                     params)

    def texel_parameters(self, level: int) -> torch.Tensor:
        """The standardised parameter image of a level [h, w, K] (the encoder fills the pyramid
        from it: texel centres, where the bilinear lookup returns the texel itself)."""
        return torch.from_numpy(self.std_pyramid[level])


class Prefetcher:
    """Produces batches in a background thread, `depth` steps ahead of the consumer, so that the
    device's reference evaluations overlap torch's training step. `plan(step)` -> (cone, with_params)
    says how to draw batch `step`; it must be a pure function of the step."""

    def __init__(self, source: BatchSource, start: int, stop: int, plan, depth: int = 2) -> None:
        self.source = source
        self.plan = plan
        self.queue: queue.Queue = queue.Queue(maxsize=depth)
        self.stop_event = threading.Event()
        self.next_step = start
        self.thread = threading.Thread(target=self._run, args=(start, stop), daemon=True,
                                       name="neumat-batches")
        self.thread.start()

    def _run(self, start: int, stop: int) -> None:
        for step in range(start, stop):
            if self.stop_event.is_set():
                return
            try:
                cone, with_params = self.plan(step)
                item = (step, self.source.batch(step, cone, with_params))
            except BaseException as exc:  # handed to the consumer, which re-raises it
                item = (step, exc)
            while not self.stop_event.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item[1], BaseException):
                return

    def get(self, step: int) -> Batch:
        got, item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        if got != step:
            raise RuntimeError(f"batch order broken: expected step {step}, got {got}")
        return item

    def close(self) -> None:
        self.stop_event.set()
        while True:  # unblock a producer waiting on a full queue
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self.thread.join(timeout=30)
