"""`neumat bake MATERIAL...`: train neural materials from layered material graphs and write their
assets (training/bake.py holds the job, training/batch.py batches of them; this module only parses
options, so `neumat --help` stays instant: torch and Ray are imported when the command runs).

One material without --cluster: bad input (a material that does not validate, an unknown network
size or torch device, an output folder that is not writable, a checkpoint of another material or
other settings with --resume) gives one message and exit code 2 before anything is written; a
missing output folder is made. Ctrl-C writes a checkpoint, prints the command that resumes it and
exits 130; no half-written asset is left behind.

Several materials, or --cluster (docs/cluster.md): a batch. Each material bakes as above, one after
another in this process or as Ray tasks; a material that fails does so alone and the rest go on.
A summary table ends it. Exit code: 0 when every material was baked, 1 when any failed, 130 after
Ctrl-C (every unfinished bake keeps its checkpoint: the same command with --resume continues), 2 on
bad options before any bake (e.g. --cluster without Ray installed).
"""

import argparse
import sys



def cmd_bake(args: argparse.Namespace) -> int:
    from neumat.training.bake import BakeInterrupted, bake
    from neumat.training.settings import BakeSettings

    settings = BakeSettings(evaluator=args.network, resolution=args.resolution, iterations=args.iterations,
                            time_budget=args.time_budget, seed=args.seed, report=not args.no_report,
                            calibrate=args.calibrate)
    if args.batch_size is not None:
        settings.batch_size = args.batch_size
    if args.directions is not None:
        settings.train_overrides["directions"] = args.directions
    if len(args.material) > 1 or args.cluster is not None or args.cpus_per_bake is not None \
            or args.gpus_per_bake is not None:
        return _bake_batch(args, settings)
    try:
        result = bake(args.material[0], args.output, settings, resume=args.resume, device=args.device,
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
        print(f"held-out skill {m['heldout_skill']:.3f} (a second reference estimate: "
              f"{m['heldout_skill_reference']:.3f}; 0 or less for a constant prediction); "
              f"held-out relative L1 {m['heldout_rel_l1']:.4f}; flat-patch FLIP: {flips}")
        print(f"report: {result.asset / 'report' / 'report.md'}")
    return 0


def _bake_batch(args: argparse.Namespace, settings) -> int:
    from neumat.training.batch import BatchOptions, exit_code, run_batch, summary_table

    options = BatchOptions(settings=settings, resume=args.resume, device=args.device,
                           torch_device=args.torch_device, progress=not args.quiet)
    outcomes = run_batch(args.material, args.output, options, cluster=args.cluster,
                         cpus_per_bake=args.cpus_per_bake, gpus_per_bake=args.gpus_per_bake)
    print(summary_table(outcomes))
    code = exit_code(outcomes)
    if code == 130:
        print("neumat bake: interrupted; every unfinished bake kept its checkpoint: run the same command "
              "with --resume to continue", file=sys.stderr)
    return code


def add_bake_parser(sub, add_device_flag) -> None:
    from neumat.renderer.neural.asset import DIRECTION_ENCODINGS
    from neumat.training.network_choice import NARROW_ALPHA
    from neumat.training.settings import (AUTO_NETWORK, DEFAULT_BATCH, DEFAULT_DIRECTIONS, DEFAULT_EVALUATOR,
                                          DEFAULT_ITERATIONS, DEFAULT_RESOLUTION, EVALUATOR_SIZES)

    p = sub.add_parser("bake", help="train neural materials from material graphs (TOML) and write their assets",
                       description="Train a neural material (latent pyramid, decoders, learned frames, sampler) "
                                   "from a layered material graph and write it as <name>.neumat/ with a bake report. "
                                   "Several materials bake one after another, or in parallel as Ray tasks with "
                                   "--cluster (docs/cluster.md); a summary table ends the batch.")
    p.add_argument("material", metavar="MATERIAL", nargs="+", help="material files (TOML)")
    p.add_argument("-o", "--output", default=None,
                   help="the asset directory (ending in .neumat; one material only) or a folder to write "
                        "<name>.neumat into (default: the current folder)")
    p.add_argument("--network", default=AUTO_NETWORK, metavar="SIZE",
                   help=f"evaluator size: {', '.join(EVALUATOR_SIZES)}, each optionally with '+lobe' (an analytic "
                        f"GGX lobe added to the evaluator: docs/baking.md), or {AUTO_NETWORK}: {DEFAULT_EVALUATOR}, "
                        f"with the lobe where the material has a conductor or dielectric layer of narrow peak "
                        f"(GGX alpha at most {NARROW_ALPHA}) (default {AUTO_NETWORK})")
    p.add_argument("--directions", default=None, choices=DIRECTION_ENCODINGS,
                   help="the evaluator's direction features: wi and wo (vectors) or the stable half and difference "
                        f"vectors (half_difference) in each learned frame (default {DEFAULT_DIRECTIONS})")
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
                   help="continue an interrupted bake from its checkpoint (<asset>.checkpoint.pt); in a batch, "
                        "the materials without one start afresh")
    p.add_argument("--batch-size", type=int, default=None, help=f"samples per iteration (default {DEFAULT_BATCH})")
    p.add_argument("--torch-device", default=None,
                   help="torch device for training: cpu or cuda (default: cuda when torch sees one)")
    p.add_argument("--no-report", action="store_true", help="skip the bake report (held-out error, flat-patch FLIP)")
    p.add_argument("--calibrate", action="store_true",
                   help="the energy calibration after training (one scale per colour channel that brings "
                        "the network's bulk to the reference's mean: docs/baking.md)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--cluster", default=None, metavar="WHERE",
                   help="bake each material as a Ray task: local (start Ray on this machine), auto (join the "
                        "cluster `ray start` runs here) or an address (ray://head:10001); needs "
                        "pip install 'neumat[cluster]'. The output folder must be storage every node shares")
    p.add_argument("--cpus-per-bake", type=float, default=None, metavar="C",
                   help="CPU cores Ray reserves for each bake (default 1; torch uses C - 1 threads, at least 1)")
    p.add_argument("--gpus-per-bake", type=float, default=None, metavar="G",
                   help="GPUs Ray reserves for each bake (default 0; fractions share one)")
    add_device_flag(p)
    p.set_defaults(func=cmd_bake)
