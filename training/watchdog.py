"""The training watchdog: notices a collapsed or diverging evaluator while it trains, and recovers.

Why. A bake can collapse silently: on a dark material under a narrow bright coat (issue 14) the
evaluator's output fell below 1e-20 everywhere within 20 steps and stayed there, while the loss sat at
the value a constant gives. With the exp output and the log(f + 0.01) loss the gradient of a
prediction f is f / (f + 0.01) times the loss's sign: far below 0.01 it vanishes, and Adam, whose
second moment remembers the large early gradients, cannot climb back out (docs/baking.md,
"Robust training").

What it watches, per training step, on the batch just trained: the correlation of prediction and
target in log space (training/losses.py, log_correlation), which a zero or constant prediction,
and so a collapsed evaluator (every prediction far below 0.01), scores 0, whatever the material and
the loss; a model that learned anything, even only the dark region below the horizon, scores well
above CORRELATION_FLOOR within 50 steps (measured in docs/baking.md, "Robust training"). Every
`every` steps it also records the prediction's mean against the targets' mean and the fraction of
dead hidden units (no positive activation over the batch) of each evaluator layer.

What it does. After `grace` steps, `bad_checks` consecutive checks with mean correlation below
CORRELATION_FLOOR are a collapse; a non-finite loss is a divergence, caught at once. Either
restores the last healthy snapshot (taken in memory at each healthy check and at the start of each
phase) and multiplies the learning rate by LR_BACKOFF; after MAX_RECOVERIES restores it raises
TrainingFailed (a NeumatError: `neumat bake` exits 2 and writes no asset).
"""

from __future__ import annotations

import copy
import math
import sys
from dataclasses import dataclass, field

import torch

from neumat.renderer.core.errors import NeumatError

CORRELATION_FLOOR = 0.1
CHECK_EVERY = 10
GRACE_STEPS = 50  # steps of each run before the first judgement (the model starts as a constant)
BAD_CHECKS = 3
LR_BACKOFF = 0.3
MAX_RECOVERIES = 3


class TrainingFailed(NeumatError):
    """Training collapsed or diverged, and restarts with lower learning rates did not help."""


@torch.no_grad()
def dead_fractions(evaluator: torch.nn.Module, inputs: torch.Tensor) -> list[float]:
    """Per hidden ReLU layer of the evaluator's MLP: the share of units never positive over `inputs`."""
    out, x = [], inputs
    for layer in evaluator.mlp.layers:
        x = layer(x)
        if isinstance(layer, torch.nn.ReLU):
            out.append(float((x.amax(0) <= 0).float().mean()))
    return out


def _log(message: str) -> None:
    """One line on stderr that does not break a tqdm progress bar."""
    try:
        from tqdm import tqdm
        tqdm.write(message, file=sys.stderr)
    except ImportError:
        print(message, file=sys.stderr)


@dataclass
class Watchdog:
    every: int = CHECK_EVERY
    grace: int = GRACE_STEPS
    bad_checks: int = BAD_CHECKS
    floor: float = CORRELATION_FLOOR
    max_recoveries: int = MAX_RECOVERIES
    lr_factor: float = 1.0  # the learning-rate multiplier after restores
    recoveries: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # one record per check
    _scores: list[float] = field(default_factory=list)
    _means: list[tuple[float, float]] = field(default_factory=list)
    _bad: int = 0
    _snapshot: dict | None = None
    _start: int = 0  # the step this run (or phase) started at: grace counts from it

    def start(self, trainer) -> None:
        """A new run or phase: snapshot the trainer as the fallback, restart the grace period."""
        self._snapshot = self._take(trainer)
        self._start = trainer.step
        self._scores.clear()
        self._means.clear()
        self._bad = 0

    @staticmethod
    def _take(trainer) -> dict:
        return {"step": trainer.step, "encoder": trainer.in_encoder_phase,
                "model": copy.deepcopy(trainer.model.state_dict()),
                "optimizer": copy.deepcopy(trainer.optimizer.state_dict()), "history": len(trainer.history)}

    def needs_start(self, trainer) -> bool:
        """True at the first run of a trainer (or of a resumed one) and when a phase began."""
        return self._snapshot is None or self._snapshot["encoder"] != trainer.in_encoder_phase

    def observe(self, trainer, record: dict, dead_inputs) -> bool:
        """After a step (trainer.step already counts it; `record` has its loss, correlation and means).
        Returns True when it restored a snapshot: the caller must restart its batches at trainer.step."""
        loss = record["loss"] + record.get("lobe_energy_loss", 0.0)
        if not math.isfinite(loss):
            return self._recover(trainer, f"training diverged at step {trainer.step} (loss {loss})")
        self._scores.append(record["correlation"])
        self._means.append((record["mean_prediction"], record["mean_target"]))
        if trainer.step % self.every:
            return False
        s = sum(self._scores) / len(self._scores)
        p = sum(m[0] for m in self._means) / len(self._means)
        t = sum(m[1] for m in self._means) / len(self._means)
        self._scores.clear()
        self._means.clear()
        record = {"step": trainer.step, "correlation": s, "mean_prediction": p, "mean_target": t,
                  "dead_units": dead_fractions(trainer.model.evaluator, dead_inputs())}
        self.checks.append(record)
        if trainer.step - self._start < self.grace:
            return False
        if s >= self.floor:
            self._bad = 0
            self._snapshot = self._take(trainer)
            return False
        self._bad += 1
        if self._bad < self.bad_checks:
            return False
        dead = ", ".join(f"{d:.0%}" for d in record["dead_units"])
        return self._recover(trainer, f"training collapsed at step {trainer.step}: its predictions no longer follow "
                                      f"the targets (log-space correlation {s:.3f} < {self.floor} for "
                                      f"{self.bad_checks * self.every} steps; mean prediction {p:.3g}, mean target "
                                      f"{t:.3g}; dead hidden units {dead})")

    def _recover(self, trainer, reason: str) -> bool:
        if len(self.recoveries) >= self.max_recoveries or self._snapshot is None:
            raise TrainingFailed(f"{reason}. Gave up after {len(self.recoveries)} restarts with lower learning "
                                 "rates; no asset was written. Try another --seed, or report the material.")
        snap = self._snapshot
        trainer.model.load_state_dict(snap["model"])
        trainer.optimizer.load_state_dict(snap["optimizer"])
        trainer.step = snap["step"]
        del trainer.history[snap["history"]:]
        self.lr_factor *= LR_BACKOFF
        self.recoveries.append({"reason": reason, "restored_step": snap["step"], "lr_factor": self.lr_factor})
        _log(f"watchdog: {reason}; restarting from step {snap['step']} with the learning rate "
             f"x{self.lr_factor:.3g}")
        self._scores.clear()
        self._means.clear()
        self._bad = 0
        self._start = trainer.step
        return True

    def state(self) -> dict:
        """What a checkpoint keeps (plain values)."""
        return {"lr_factor": self.lr_factor, "recoveries": list(self.recoveries)}

    def load_state(self, state: dict) -> None:
        self.lr_factor = float(state.get("lr_factor", 1.0))
        self.recoveries = list(state.get("recoveries", []))

    def summary(self) -> dict:
        """For the bake report: restores and the last check."""
        return {"lr_factor": self.lr_factor, "recoveries": list(self.recoveries),
                "last_check": self.checks[-1] if self.checks else None}
