"""The evaluator's training losses (docs/design.md, 'Training'; docs/baking.md, 'Loss options') and two
scores that a zero or constant prediction cannot pass, whatever the material:

- skill: 1 - logL1(model) / logL1(best constant), logL1 = mean |log(y + 0.01) - log(t + 0.01)|, the
  best constant being the per-channel median target (log-L1 is L1 after a monotone map). The bake
  report's lead metric; a constant scores <= 0.
- log_correlation: Pearson correlation of log(y + 0.01) and log(t + 0.01) over the batch; a constant
  scores 0. The watchdog's measure: it does not depend on the loss (a bake's own loss is no fair
  judge: rel_l2 values are dominated by under-predicted peak samples, and its mean fit of heavy-tailed
  4-walk targets scored -5 to -2e5 in rel_l2 skill and -0.7 to -3.3 in log-L1 skill on worn_plastic
  while it trained), and a collapsed evaluator, all predictions far below 0.01, scores 0.
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
    never from the noisy target sample, so training converges to the targets' mean (unbiased)."""
    return ((pred - target) ** 2 / (pred.detach() + LOG_EPS) ** 2).mean()


LOSSES = {"log_l1": log_l1, "power_l1": power_l1, "rel_l2": relative_l2}


def skill(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - logL1(pred) / logL1(per-channel median of target): <= 0 for any constant prediction."""
    t = target.clamp_min(0)
    err_const = log_l1(t.median(0).values.expand_as(t), t)
    return 1.0 - log_l1(pred.clamp_min(0), t) / err_const.clamp_min(1e-12)


def log_correlation(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of log(pred + eps) and log(target + eps) over all entries; 0 when either
    is constant."""
    a = torch.log(pred.clamp_min(0) + LOG_EPS).flatten().double()
    b = torch.log(target.clamp_min(0) + LOG_EPS).flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = (a.square().sum() * b.square().sum()).sqrt()
    return torch.where(denom > 1e-12, (a * b).sum() / denom.clamp_min(1e-12), torch.zeros_like(denom)).float()
