"""Energy calibration after training (`neumat bake --calibrate`): one scale per colour channel on the
evaluator network's output, undoing the bias of the log-L1 loss.

Why: the log-L1 loss converges towards the median (in log space) of its noisy targets, not their
mean, and the reference's walks are right-skewed, so a trained evaluator is darker than the
reference. Rendered views showed it as a whole-image bias (glazed_ceramic 2-7 % dark per channel),
and FLIP is very sensitive to it (docs/baking.md, 'Latent resolution and energy calibration').

What: the bias is a property of the targets, so it is measured on the reference alone, never from
the model's errors. For fresh queries of the held-out distribution, REPEATS independent targets of
`walks` walks each (the training's target) give per query the mean and the log-space median
exp(median log(t + 0.01)) - 0.01, which is what the loss converges to. Per colour channel, the
queries are sorted by that median into BUCKETS groups of equal count; the scale is the median over
the groups of sum(mean) / sum(median). It is folded into the network's last bias, x + log s: no cost
at run time, and the asset's format does not change. The analytic lobe, if any, keeps its own energy.

Why not compare the model with the targets: an undertrained model misses whole features (a coat's
peak on half the squares of a checker), and any ratio of targets to predictions then reports that
miss as a global darkening; scaling by it tripled the held-out error of a 300-iteration bake. Why a
median over brightness groups: one ratio over all queries would be set by the few brightest.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from neumat.training.losses import LOG_EPS
from neumat.training.model import NeuralMaterial

CALIBRATION_QUERIES = 1 << 13
REPEATS = 32  # independent targets per query: enough for a median and a mean of each
CALIBRATION_STREAM = 0x63616C69  # mixed into the seed: neither the training nor the held-out stream
BUCKETS = 16  # brightness groups per channel (module doc)
SCALE_RANGE = (0.5, 2.0)  # a scale outside it is clamped (and reported): no skew is that large


def loss_bias_scale(targets: np.ndarray, buckets: int = BUCKETS) -> np.ndarray:
    """targets [R, N, 3] (R independent estimates per query) -> the per-channel scale [3] that takes
    the log-space median of each query's estimates to their mean, as in the module doc (1 for a
    channel that is black everywhere)."""
    t = np.asarray(targets, np.float64).clip(min=0.0)
    mean = t.mean(0)
    median = np.exp(np.median(np.log(t + LOG_EPS), axis=0)) - LOG_EPS
    order = np.argsort(median, axis=0, kind="stable")
    out = np.ones(t.shape[2])
    for c in range(t.shape[2]):
        ratios = [mean[g, c].sum() / median[g, c].sum()
                  for g in np.array_split(order[:, c], buckets) if median[g, c].sum() > 1e-9 * len(g)]  # not black
        if ratios:
            out[c] = float(np.median(ratios))
    return out


def apply_scale(model: NeuralMaterial, scale: np.ndarray) -> None:
    """Multiplies the evaluator network's output by `scale` [3]: log(scale) onto its last bias."""
    last = model.evaluator.mlp.layers[-1]
    with torch.no_grad():
        last.bias += torch.log(torch.as_tensor(scale, dtype=last.bias.dtype, device=last.bias.device))


def calibrate(model: NeuralMaterial, target: Callable[..., np.ndarray], n: int = CALIBRATION_QUERIES,
              seed: int = 0, repeats: int = REPEATS) -> dict:
    """Measures the loss's bias on the reference and applies it to `model`. `target(uv, wi, wo, level,
    seed) -> [N, 3]` is one training target per query (training/report.py reference_target with the
    training's walks per target). Returns what the manifest records."""
    from neumat.training.report import heldout_queries

    rng = np.random.default_rng([seed, CALIBRATION_STREAM])
    queries = heldout_queries(n, model.latents.num_levels, rng)
    targets = np.stack([target(*queries, int(s)) for s in rng.integers(0, 2**32, repeats)])
    measured = loss_bias_scale(targets)
    applied = np.clip(measured, *SCALE_RANGE)
    apply_scale(model, applied)
    return {"scale": [float(v) for v in applied], "measured_scale": [float(v) for v in measured],
            "queries": n, "repeats": repeats, "clamped": bool(np.any(applied != measured))}
