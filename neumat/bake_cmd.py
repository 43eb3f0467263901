"""`neumat bake MATERIAL.toml`: train a neural material from a layered material graph and write its
asset (training/bake.py holds the job; this module only parses options, so `neumat --help` stays
instant: torch is imported when the command runs).

Bad input (a material that does not validate, an unknown network size or torch device, an output
folder that is not writable, a checkpoint of another material or other settings with --resume)
gives one message and exit code 2 before anything is written; a missing output folder is made.
Ctrl-C writes a checkpoint, prints the command that resumes it and exits 130; no half-written
asset is left behind.
"""

import argparse
import sys

EVALUATOR_CHOICES = ("2x16", "2x32", "3x64")  # training/networks.py EVALUATOR_SIZES


def cmd_bake(args: argparse.Namespace) -> int:
    from training.bake import BakeInterrupted, BakeSettings, bake

    settings = BakeSettings(evaluator=args.network, resolution=args.resolution, iterations=args.iterations,
                            time_budget=args.time_budget, seed=args.seed, report=not args.no_report)
    if args.batch_size is not None:
        settings.batch_size = args.batch_size
    try:
        result = bake(args.material, args.output, settings, resume=args.resume, device=args.device,
                      torch_device=args.torch_device, progress=not args.quiet)
    except BakeInterrupted as e:
        print(f"neumat bake: {e}", file=sys.stderr)
        return 130
    t = result.timings
    print(f"wrote {result.asset} ({result.steps} iterations; training {t['training_s'] / 60:.1f} min, "
          f"total {t['total_s'] / 60:.1f} min)")
    if result.report is not None:
        m = result.report["metrics"]
        flips = ", ".join(f"{k} {v:.4f}" for k, v in m["flip"].items())
        print(f"held-out relative L1 {m['heldout_rel_l1']:.4f}; flat-patch FLIP: {flips}")
        print(f"report: {result.asset / 'report' / 'report.md'}")
    return 0


# Shown in --help without importing torch; tests/test_bake.py keeps them equal to training/bake.py's.
DEFAULT_RESOLUTION = 256
DEFAULT_ITERATIONS = 4000


def add_bake_parser(sub, add_device_flag) -> None:
    p = sub.add_parser("bake", help="train a neural material from a material graph (TOML) and write its asset",
                       description="Train a neural material (latent pyramid, decoders, learned frames, sampler) "
                                   "from a layered material graph and write it as <name>.neumat/ with a bake report.")
    p.add_argument("material", metavar="MATERIAL.toml")
    p.add_argument("-o", "--output", default=None,
                   help="the asset directory (ending in .neumat) or a folder to write <name>.neumat into "
                        "(default: the current folder)")
    p.add_argument("--network", default="2x32", metavar="SIZE",
                   help=f"evaluator size: {', '.join(EVALUATOR_CHOICES)} (default 2x32)")
    p.add_argument("--resolution", type=int, default=None,
                   help=f"latent level-0 resolution, a power of two (default: the material's, at most "
                        f"{DEFAULT_RESOLUTION})")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--iterations", type=int, default=None,
                        help=f"training iterations in all, half encoder phase and half fine-tuning "
                             f"(default {DEFAULT_ITERATIONS})")
    length.add_argument("--time-budget", type=float, default=None, metavar="MIN",
                        help="train for this many minutes instead, planning the iterations from the measured "
                             "speed (not reproducible step for step)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted bake from its checkpoint (<asset>.checkpoint.pt)")
    p.add_argument("--batch-size", type=int, default=None, help="samples per iteration (default 16384)")
    p.add_argument("--torch-device", default=None,
                   help="torch device for training: cpu or cuda (default: cuda when torch sees one)")
    p.add_argument("--no-report", action="store_true", help="skip the bake report (held-out error, flat-patch FLIP)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_device_flag(p)
    p.set_defaults(func=cmd_bake)
