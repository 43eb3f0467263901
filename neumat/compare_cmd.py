"""`neumat compare`: neural against reference, with FLIP, PSNR, relative MSE and frame times.

    neumat compare SCENE [--spp N] [--equal-time] [--max-flip X] [-o DIR]
    neumat compare REFERENCE.exr TEST.exr [--max-flip X] [-o DIR]

The jobs live in the library (renderer/compare/stage.py for scenes and image pairs,
renderer/compare/fidelity.py for --material); this module parses, checks, prints and writes.

Exit codes: 0, 1 when the whole image's FLIP exceeds --max-flip (a CI gate), 2 on bad input
(nothing is written then: every input and the output folder are checked before rendering).
"""

import argparse
import sys
from pathlib import Path

from neumat.render_cmd import sampling_options
from neumat.renderer.core.errors import NeumatError

IMAGE_SUFFIXES = (".exr", ".png")


def _is_image(arg: str) -> bool:
    return Path(arg).suffix.lower() in IMAGE_SUFFIXES


def _warn(messages: list[str]) -> None:
    for w in messages:
        print(f"warning: {w}", file=sys.stderr)


def _check_max_flip(value: float | None) -> None:
    if value is not None and not 0.0 <= value <= 1.0:
        raise NeumatError(f"--max-flip must be in [0, 1], got {value}")


def _finish(out_dir: Path, report, stems: tuple[str, str]) -> int:
    from neumat.renderer.compare.report import material_rows, write_report

    written = write_report(out_dir, report, stems)
    m = report.metrics["image"]
    print(f"FLIP {m['flip']:.4f}, PSNR {m['psnr_db']:.2f} dB, relative MSE {m['relative_mse']:.4g}"
          + (f"; reference/neural time per sample {report.timings['speedup']:.2f}x" if report.timings else ""))
    for label, em in report.extra_metrics.items():
        print(f"{label}: FLIP {em['image']['flip']:.4f}, PSNR {em['image']['psnr_db']:.2f} dB")
    rows = material_rows(report)
    if rows:
        width = max(len(r[0]) for r in rows)
        print(f"{'material':<{width}}  pixels   FLIP    PSNR dB  time ratio")
        for name, share, flip, psnr, _, _, _, speedup in rows:
            ratio = f"{speedup:.2f}x" if speedup is not None else "-"
            print(f"{name:<{width}}  {share:>7}  {flip:.4f}  {psnr:7.2f}  {ratio}")
    print(f"wrote {len(written)} files to {out_dir}; open {out_dir / 'report.html'}")
    if not report.passed:
        print(f"FLIP {m['flip']:.4f} exceeds --max-flip {report.max_flip:g}", file=sys.stderr)
        return 1
    return 0


def compare_image_files(args: argparse.Namespace) -> int:
    from neumat.renderer.compare.report import prepare_output_dir
    from neumat.renderer.compare.stage import compare_images

    a_path, b_path = Path(args.inputs[0]), Path(args.inputs[1])
    report = compare_images(a_path, b_path, args.max_flip)
    out_dir = prepare_output_dir(args.output or f"compare_{a_path.stem}_{b_path.stem}")
    _warn(report.warnings)
    return _finish(out_dir, report, ("reference", "test"))


def compare_scene(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neumat.renderer.compare.report import prepare_output_dir
    from neumat.renderer.compare.stage import check_comparable
    from neumat.renderer.compare.stage import compare_scene as run_comparison
    from neumat.renderer.core.device import create_device
    from neumat.renderer.scene.scene_file import load_scene

    scene = load_scene(args.inputs[0])
    spp, max_depth, seed = sampling_options(scene, args)
    check_comparable(scene)
    width, height = scene.camera.image_size(args.width, args.height)
    out_dir = prepare_output_dir(args.output or f"compare_{scene.name}")
    device = create_device(args.device)
    report = run_comparison(
        device, scene, spp, max_depth, seed, width, height, equal_time=args.equal_time,
        material_timing_spp=args.material_timing_spp, max_flip=args.max_flip,
        log=lambda line: print(line, file=sys.stderr, flush=True), mlp=args.mlp,
        progress=lambda kind, total: tqdm(total=total, unit="spp", desc=f"{kind:>9}", leave=False, file=sys.stderr))
    _warn(report.warnings)
    return _finish(out_dir, report, report.names)


def _check_material_options(args: argparse.Namespace) -> None:
    """--material's own checks (before anything is rendered or written)."""
    if args.inputs:
        raise NeumatError("--material takes no scene or images: neumat compare --material ASSET.neumat")
    scene_only = [flag for flag, given in (("--equal-time", args.equal_time), ("--width", args.width),
                                           ("--height", args.height), ("--max-depth", args.max_depth),
                                           ("--seed", args.seed)) if given]
    if scene_only:
        raise NeumatError(f"{', '.join(scene_only)}: only for a scene, not with --material")


def compare_material(args: argparse.Namespace) -> int:
    """The fidelity of a neural asset to its material graph on the fixed views (renderer/compare/fidelity.py)."""
    from neumat.renderer.compare.report import FIDELITY_HEADER, fidelity_rows, prepare_output_dir, write_fidelity_report
    from neumat.renderer.core.device import create_device
    from neumat.renderer.compare.fidelity import check_inputs, measure, record_in_report, samplings
    from neumat.renderer.compare.reference_cache import ReferenceCache

    _check_material_options(args)
    inputs = check_inputs(args.material, args.source, args.views, args.size)
    report_json = inputs.asset_path / "report" / "report.json"
    if args.record and not report_json.is_file():
        raise NeumatError(f"--record: {report_json} does not exist (the asset was baked with --no-report?)")
    reference, neural = samplings(args.spp, args.reference_minutes, args.reference_max_spp, args.neural_minutes)
    out_dir = prepare_output_dir(args.output or f"compare_{inputs.material.name}")
    device = create_device(args.device)
    fidelity = measure(inputs, device, reference, neural, ReferenceCache(args.reference_cache),
                       refresh=args.fresh_reference, log=lambda line: print(line, file=sys.stderr, flush=True),
                       mlp=args.mlp)
    written = write_fidelity_report(out_dir, fidelity)
    summary = fidelity.summary()
    if args.record:
        print(f"recorded render_mean_flip {summary['mean_flip']:.4f} in {record_in_report(report_json, summary)}",
              file=sys.stderr)
    print("  ".join(FIDELITY_HEADER[:5] + ["ref. noise", "neural noise"]))
    ref_noise, neural_noise = (FIDELITY_HEADER.index(c) for c in ("reference halves FLIP", "neural halves FLIP"))
    for row in fidelity_rows(summary):
        name, flip, floor, flip_material, psnr, *_ = row
        print(f"{name:<13} {flip:.4f}  {'-' if floor is None else f'{floor:.4f}':>6}  "
              f"{'-' if flip_material is None else f'{flip_material:.4f}':>6}  {psnr:6.2f}  "
              f"{row[ref_noise]:.4f}  {row[neural_noise]:.4f}")
    print(f"wrote {len(written)} files to {out_dir}; open {out_dir / 'report.html'}")
    if args.max_flip is not None and summary["mean_flip"] > args.max_flip:
        print(f"mean FLIP {summary['mean_flip']:.4f} exceeds --max-flip {args.max_flip:g}", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    _check_max_flip(args.max_flip)
    if args.record and args.material is None:
        raise NeumatError("--record writes a --material measurement into the asset's report: give --material")
    if args.material is not None:
        return compare_material(args)
    if len(args.inputs) == 2:
        if not all(_is_image(a) for a in args.inputs):
            raise NeumatError("two inputs must both be images (.exr or .png): neumat compare A.exr B.exr")
        return compare_image_files(args)
    if len(args.inputs) != 1:
        raise NeumatError("give one scene, or two images: neumat compare SCENE | neumat compare A.exr B.exr")
    if _is_image(args.inputs[0]):
        raise NeumatError(f"{args.inputs[0]}: an image needs a second one to compare against")
    return compare_scene(args)


def add_compare_parser(sub, add_device_flag) -> None:
    """Registers `neumat compare` on the subparsers `sub` of the neumat command."""
    from neumat.renderer.compare.stage import MATERIAL_TIMING_SPP
    from neumat.renderer.neural.codegen import MLP_PATHS
    p = sub.add_parser("compare", help="compare neural against reference renders (FLIP, PSNR, timings, HTML report)",
                       description="Render a scene with reference and with neural materials and compare them "
                                   "(whole image and per material), or compare any two images of the same size. "
                                   "Exit code 1 when --max-flip is exceeded, 2 on bad input.")
    p.add_argument("inputs", nargs="*", metavar="SCENE | A.exr B.exr",
                   help="a scene .toml (or built-in name), or a reference and a test image")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="output folder (default: compare_<scene> or compare_<a>_<b>)")
    p.add_argument("--spp", type=int, default=None, help="samples per pixel of both renders (default: the scene's)")
    p.add_argument("--mlp", choices=MLP_PATHS, default="auto",
                   help="neural decoders' code path (as for neumat render): buffer compiles once for any assets, "
                        "so comparing a new asset compiles nothing; auto: coopvec where available, else loop")
    p.add_argument("--equal-time", action="store_true",
                   help="also render the neural version for the reference's render time and compare that")
    p.add_argument("--max-flip", type=float, default=None, metavar="X",
                   help="exit with code 1 when the whole image's mean FLIP exceeds X")
    p.add_argument("--max-depth", type=int, default=None, help="scattering events per path (default: the scene's)")
    p.add_argument("--seed", type=int, default=None, help="random seed of both renders (default: the scene's)")
    p.add_argument("--width", type=int, default=None, help="image width (the height follows the camera's aspect ratio)")
    p.add_argument("--height", type=int, default=None, help="image height (the width follows the camera's aspect ratio)")
    p.add_argument("--material-timing-spp", type=int, default=MATERIAL_TIMING_SPP, metavar="N",
                   help=f"spp of the per-material timing renders, 0 to skip them (default {MATERIAL_TIMING_SPP})")
    m = p.add_argument_group("a neural material's fidelity on fixed views (--material)")
    m.add_argument("--material", default=None, metavar="ASSET.neumat",
                   help="render the asset and the material graph it was baked from on the fixed views (a ball and "
                        "a tile: whole, close-up, far, grazing) and report per-view and mean FLIP; --spp is then "
                        "the neural side's fixed spp per view (default: until its halves' FLIP is at most 0.01, "
                        "within 30 s for all views)")
    m.add_argument("--source", default=None, metavar="FILE.toml",
                   help="the material graph the asset was baked from (default: the manifest's source.file, beside "
                        "the asset, in ../materials or among the bundled materials)")
    m.add_argument("--views", type=int, default=None, metavar="N", help="the first N of the 5 fixed views (default 5)")
    m.add_argument("--size", type=int, default=None, metavar="PX", help="pixels per view, square (default 128)")
    m.add_argument("--reference-minutes", type=float, default=None, metavar="MIN",
                   help="the reference renders end at most MIN minutes after the start, counting loading and "
                        "compiling but not the neural renders (default 8)")
    m.add_argument("--reference-max-spp", type=int, default=None, metavar="N",
                   help="spp cap of each view's reference (default 65536)")
    m.add_argument("--neural-minutes", type=float, default=None, metavar="MIN",
                   help="time budget of the neural renders, all views together (default 0.5; more gives a less "
                        "noisy measurement)")
    m.add_argument("--reference-cache", default=None, metavar="DIR",
                   help="where converged references are kept (default: the neumat cache's fidelity-references)")
    m.add_argument("--fresh-reference", action="store_true", help="render the references again (and re-cache them)")
    m.add_argument("--record", action="store_true",
                   help="also write the result into the asset's bake report (report/report.json: render_mean_flip "
                        "and a render_fidelity block)")
    add_device_flag(p)
    p.set_defaults(func=cmd_compare)
