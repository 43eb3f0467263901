"""Energy calibration after training: one scale per colour channel on the evaluator's network output.

Why: the evaluator's log-L1 loss converges towards the median of its noisy targets, and layered
random walks are right-skewed, so a trained evaluator is darker than the reference's mean. The
rendered views show it as a whole-image bias (glazed_ceramic 2-7 % dark per channel, car_paint
8-20 %), and FLIP is very sensitive to it: on glazed_ceramic this calibration took the rendered
mean FLIP from 0.086 to 0.043 (docs/baking.md, 'Energy calibration').

What: with y = m + l (m = exp(x - 3), the network's part; l, the analytic lobe's part, 0 without a
lobe) and t a target of the reference's mean, over fresh queries of the held-out distribution: per
colour channel, sort the queries by y into BUCKETS groups of equal count, take sum(t - l) / sum(m)
in each, and use the median over the groups as the scale s of m.

A ratio of sums is linear in t, so the targets' noise does not bias it (unlike the median a log
loss finds). One ratio over all queries would be set by the brightest few: a 2x32 evaluator
misses narrow peaks by far more than its bulk (glazed_ceramic: 1.73 in the brightest tenth, 1.07-1.10
in the eight middle tenths, 1.7 overall), and scaling the whole material by that would make its
body far too bright. The median over brightness groups is the bias of the bulk of the material,
which is what a whole-image darkening comes from. The scale is folded into the network's last
bias, x + log s: no cost at run time, and the asset's format does not change. The lobe keeps its
own energy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from neumat.training.model import NeuralMaterial

CALIBRATION_QUERIES = 1 << 17
CALIBRATION_WALKS = 8  # per target: the estimator is linear in t, so walks only lower its variance
CALIBRATION_STREAM = 0x63616C69  # mixed into the seed: neither the training nor the held-out stream
BUCKETS = 16  # brightness groups per channel (module doc)
SCALE_RANGE = (0.5, 2.0)  # a scale outside it is clamped (and reported): a model that far off is not calibrated


@torch.no_grad()
def network_and_lobe(model: NeuralMaterial, uv: np.ndarray, wi: np.ndarray, wo: np.ndarray, level: np.ndarray,
                     chunk: int = 1 << 16) -> tuple[np.ndarray, np.ndarray]:
    """(m, l) [N, 3] each: the evaluator network's and the analytic lobe's part of f * cos at integer
    levels (l is 0 without a lobe)."""
    from neumat.training import lobe as analytic
    from neumat.training.frames import features

    dev = next(model.parameters()).device
    ms, ls = [], []
    for s in range(0, len(uv), chunk):
        u, i, o = (torch.from_numpy(a[s:s + chunk]).to(dev) for a in (uv, wi, wo))
        latent = model.latents.sample_level(u, torch.from_numpy(level[s:s + chunk]).to(dev).long())
        dirs = model.local_directions(latent, i, o)
        m = model.evaluator(features(dirs, model.config.directions), latent)
        lobe = analytic.evaluate(model.lobe(latent), dirs[0], dirs[1]) if model.lobe is not None \
            else torch.zeros_like(m)
        ms.append(m.float().cpu())
        ls.append(lobe.float().cpu())
    return torch.cat(ms).numpy(), torch.cat(ls).numpy()


def energy_scale(m: np.ndarray, lobe: np.ndarray, target: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """The per-channel scale s [3] of the module doc (unclamped); 1 for a channel whose network part
    is zero everywhere."""
    m, lobe, target = (np.asarray(a, np.float64) for a in (m, lobe, target))
    order = np.argsort(m + lobe, axis=0, kind="stable")
    out = np.ones(m.shape[1])
    for c in range(m.shape[1]):
        ratios = []
        for group in np.array_split(order[:, c], buckets):
            den = m[group, c].sum()
            if den > 0:
                ratios.append((target[group, c] - lobe[group, c]).sum() / den)
        if ratios:
            out[c] = float(np.median(ratios))
    return out


def apply_scale(model: NeuralMaterial, scale: np.ndarray) -> None:
    """Multiplies the evaluator network's output by `scale` [3]: log(scale) onto its last bias."""
    last = model.evaluator.mlp.layers[-1]
    with torch.no_grad():
        last.bias += torch.log(torch.as_tensor(scale, dtype=last.bias.dtype, device=last.bias.device))


def calibrate(model: NeuralMaterial, target, n: int = CALIBRATION_QUERIES, seed: int = 0) -> dict:
    """Measures and applies the energy scale. `target(uv, wi, wo, level, seed) -> [N, 3]` is an
    estimate of the reference's mean (training/report.py reference_target). Returns what to record:
    the scale applied, the measured one and the query count."""
    from neumat.training.report import heldout_queries

    rng = np.random.default_rng([seed, CALIBRATION_STREAM])
    uv, wi, wo, level = heldout_queries(n, model.latents.num_levels, rng)
    t = target(uv, wi, wo, level, int(rng.integers(0, 2**32)))
    m, lobe = network_and_lobe(model, uv, wi, wo, level)
    measured = energy_scale(m, lobe, t)
    applied = np.clip(measured, *SCALE_RANGE)
    apply_scale(model, applied)
    return {"scale": [float(v) for v in applied], "measured_scale": [float(v) for v in measured],
            "queries": n, "walks_per_target": CALIBRATION_WALKS,
            "clamped": bool(np.any(applied != measured)),
            "log_scale_max": float(max(abs(math.log(max(v, 1e-30))) for v in applied))}
