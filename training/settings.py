"""What a bake can be asked for, without torch: the network choices, the bake defaults and
`BakeSettings`. `neumat bake --help` reads its choices and defaults from here (torch loads only
when a bake runs); training/networks.py and training/bake.py build on the same names."""

from __future__ import annotations

from dataclasses import dataclass, field

from neumat.renderer.neural.asset import DIRECTION_ENCODINGS, LOBE_SUFFIX

EVALUATOR_SIZES: dict[str, list[int]] = {"2x16": [16, 16], "2x32": [32, 32], "3x64": [64, 64, 64]}
DEFAULT_EVALUATOR = "2x32"  # the evaluator size of the default network
# "2x32+lobe": the evaluator plus the analytic GGX lobe (training/lobe.py); "auto" (the default):
# DEFAULT_EVALUATOR, with the lobe where the material has a narrow peak (training/network_choice.py)
AUTO_NETWORK = "auto"
NETWORK_CHOICES = (AUTO_NETWORK,) + tuple(EVALUATOR_SIZES) + tuple(s + LOBE_SUFFIX for s in EVALUATOR_SIZES)
DEFAULT_DIRECTIONS = DIRECTION_ENCODINGS[0]  # wi and wo; "half_difference": training/frames.py

# Latent level 0, capped at the material's own resolution. 512 (the bundled materials' own) against
# 256: rendered mean FLIP car_paint 0.190 -> 0.160, glazed_ceramic 0.103 -> 0.085, worn_plastic
# 0.082 -> 0.055 (docs/baking.md, 'Latent resolution and energy calibration'): a magnified level 0
# cannot hold flakes and scratches finer than its texels.
DEFAULT_RESOLUTION = 512
DEFAULT_ITERATIONS = 4000  # in all: half encoder phase, half fine-tuning
DEFAULT_BATCH = 16384
MAX_BATCH = 1 << 22  # a few GB of activations and reference queries per step
MIN_RESOLUTION = 4


def parse_network(spec: str) -> tuple[str, bool]:
    """A network spec "SIZE" or "SIZE+lobe" -> (evaluator size, with the analytic lobe).
    ValueError naming the choices for anything else."""
    size, lobe = (spec[:-len(LOBE_SUFFIX)], True) if spec.endswith(LOBE_SUFFIX) else (spec, False)
    if size not in EVALUATOR_SIZES:
        raise ValueError(f"unknown evaluator network '{spec}' (choose from {', '.join(NETWORK_CHOICES)})")
    return size, lobe


@dataclass
class BakeSettings:
    """What `neumat bake` lets a user choose (and the ablation varies)."""

    evaluator: str = AUTO_NETWORK  # a network spec, or "auto": chosen per material
    resolution: int | None = None  # default: min(material resolution, DEFAULT_RESOLUTION)
    iterations: int | None = None  # default: DEFAULT_ITERATIONS unless time_budget is given
    time_budget: float | None = None  # minutes of training
    seed: int = 0
    batch_size: int = DEFAULT_BATCH
    use_encoder: bool = True
    use_frames: bool = True
    report: bool = True
    # The energy calibration after training (training/calibration.py): off by default until its
    # rendered gain is measured on more than the bundled materials (docs/baking.md).
    calibrate: bool = False
    heldout_queries: int = 1 << 16
    checkpoint_every: int = 250  # steps
    checkpoint_seconds: float = 120.0
    replan_every: int = 50  # steps between time-budget re-plans
    train_overrides: dict = field(default_factory=dict)  # other TrainConfig fields (experiments, tests)
