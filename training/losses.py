"""The evaluator's training losses (docs/design.md, 'Training'; docs/baking.md, 'Loss options') and
the skill score built on them: 1 - loss(model) / loss(best constant).

A skill score cannot be passed by a zero or constant prediction, whatever the material: for every
loss here the best constant per channel is known in closed form (the median of the targets for the
L1 losses, which are L1 after a monotone map; for rel_l2 the mean plus the variance over the mean). The watchdog scores training batches under the bake's own loss (a log-L1 score
judged rel_l2 bakes, which fit the mean of heavy-tailed 4-walk targets, worse than a constant:
-0.7 to -3.3 on worn_plastic while they trained); the bake report scores held-out queries under
log-L1.
"""

import torch

LOG_EPS = 0.01


def log_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The evaluator loss: mean |log(pred + eps) - log(target + eps)|."""
    return (torch.log(pred + LOG_EPS) - torch.log(target + LOG_EPS)).abs().mean()


def power_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Bitterli et al. 2026's power-mapped L1: mean |M(pred) - M(target)|, M(x) = 3 (x^(1/3) - 1).
    (The clamp keeps pow's gradient finite where exp underflowed to 0.)"""
    return 3.0 * (pred.clamp_min(1e-30).pow(1 / 3) - target.clamp_min(0).pow(1 / 3)).abs().mean()


def relative_l2(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """mean (pred - target)^2 / (sg(pred) + eps)^2: the scale comes from the (detached) prediction,
    never from the noisy target sample, so the minimiser is the targets' mean (unbiased)."""
    return ((pred - target) ** 2 / (pred.detach() + LOG_EPS) ** 2).mean()


LOSSES = {"log_l1": log_l1, "power_l1": power_l1, "rel_l2": relative_l2}

def _median(t: torch.Tensor) -> torch.Tensor:
    return t.median(0).values


def _rel_l2_constant(t: torch.Tensor) -> torch.Tensor:
    """argmin over c of mean (c - t)^2 / (c + eps)^2 = mean + variance / (mean + eps) (set the
    derivative of ((c - mean)^2 + var) / (c + eps)^2 to zero)."""
    mean = t.mean(0)
    return mean + t.var(0, unbiased=False) / (mean + LOG_EPS)


BEST_CONSTANT = {"log_l1": _median, "power_l1": _median, "rel_l2": _rel_l2_constant}


def loss_skill(loss: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - LOSSES[loss](pred, target) / LOSSES[loss](best constant, target), per-channel constants."""
    t = target.clamp_min(0)
    err_const = LOSSES[loss](BEST_CONSTANT[loss](t).expand_as(t), t)
    return 1.0 - LOSSES[loss](pred.clamp_min(0), t) / err_const.clamp_min(1e-12)
