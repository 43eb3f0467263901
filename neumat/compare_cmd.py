"""`neumat compare`: neural against reference, with FLIP, PSNR, relative MSE and frame times.

    neumat compare SCENE [--spp N] [--equal-time] [--max-flip X] [-o DIR]
    neumat compare REFERENCE.exr TEST.exr [--max-flip X] [-o DIR]

A scene is rendered twice by one path tracer with both kinds of every material bound (compiled
once): every object with its reference material, then every object with its neural one, at equal
samples per pixel and the same seed; `--equal-time` adds a neural render given the reference's
render time. Per-material frame times come from short extra renders that shade only that material
(every other surface black), since a path tracer cannot time one material inside a full frame.

Exit codes: 0, 1 when the whole image's FLIP exceeds --max-flip (a CI gate), 2 on bad input
(nothing is written then: every input and the output folder are checked before rendering).
"""

import argparse
import sys
import time
from pathlib import Path

from neumat.render_cmd import sampling_options
from neumat.renderer.core.errors import NeumatError

IMAGE_SUFFIXES = (".exr", ".png")
MATERIAL_TIMING_SPP = 2


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
    from neumat.renderer.compare.comparison import check_same_size, checked_image, error_maps, metrics, side_by_side
    from neumat.renderer.compare.report import ComparisonReport, prepare_output_dir
    from neumat.renderer.images.io import read_image

    a_path, b_path = Path(args.inputs[0]), Path(args.inputs[1])
    a = checked_image(a_path.name, read_image(a_path))
    b = checked_image(b_path.name, read_image(b_path))
    check_same_size(a.image, b.image, (str(a_path), str(b_path)))
    out_dir = prepare_output_dir(args.output or f"compare_{a_path.stem}_{b_path.stem}")
    warnings = a.warnings + b.warnings
    _warn(warnings)
    maps = error_maps(a.image, b.image)
    names = (a_path.name, b_path.name)
    h, w = a.image.shape[:2]
    report = ComparisonReport(
        title=f"neumat compare: {a_path.name} vs {b_path.name}", names=names, reference=a.image, test=b.image,
        flip_magma=maps.flip_magma, figure=side_by_side(a.image, b.image, maps, names, f"{a_path.name} vs {b_path.name}"),
        metrics=metrics(maps), exposure=maps.exposure,
        context={"reference": str(a_path), "test": str(b_path), "size": f"{w}x{h}"},
        warnings=warnings, max_flip=args.max_flip)
    return _finish(out_dir, report, ("reference", "test"))


def _objects_by_material(tracer) -> dict[str, list[int]]:
    """Material name -> the objects showing it (by their reference material)."""
    groups: dict[str, list[int]] = {}
    for i, choices in enumerate(tracer.assignment.object_choices):
        if "reference" in choices:
            groups.setdefault(tracer.material_names[choices["reference"]], []).append(i)
    return groups


def _material_timings(tracer, spp: int, seed: int, max_depth: int, width: int, height: int) -> dict:
    """ms/spp of renders that shade only one material (reference, then neural), and of none."""
    def ms_per_spp(kinds) -> float:
        return tracer.render(spp, seed, max_depth=max_depth, width=width, height=height, kinds=kinds).ms_per_spp

    n = len(tracer.scene.objects)
    baseline = ms_per_spp([None] * n)
    out = {}
    for name, objects in _objects_by_material(tracer).items():
        t = {}
        for kind in ("reference", "neural"):
            t[f"{kind}_ms_per_spp"] = ms_per_spp([kind if i in objects else None for i in range(n)])
        t["speedup"] = t["reference_ms_per_spp"] / max(t["neural_ms_per_spp"], 1e-9)
        out[name] = t
    return {"baseline_ms_per_spp": baseline, "materials": out}


def compare_scene(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neumat.renderer.compare.comparison import error_maps, metrics, side_by_side
    from neumat.renderer.compare.report import ComparisonReport, prepare_output_dir
    from neumat.renderer.core.device import create_device
    from neumat.renderer.pathtracer.tracer import prepare_render
    from neumat.renderer.scene.scene_file import load_scene, resolve_materials

    wall = time.perf_counter()
    scene = load_scene(args.inputs[0])
    spp, max_depth, seed = sampling_options(scene, args)
    assignment = resolve_materials(scene, "reference", switchable=True)
    missing = [f"{scene.objects[i].name}: {why}" for i, why in assignment.unavailable.items()]
    if missing:
        raise NeumatError(f"{scene.path.name}: compare needs a neural asset for every material; "
                          + "; ".join(missing))
    width, height = scene.camera.image_size(args.width, args.height)
    out_dir = prepare_output_dir(args.output or f"compare_{scene.name}")

    device = create_device(args.device)
    tracer, _ = prepare_render(device, scene, "reference", switchable=True)
    print(f"compiling the path tracer with {len(tracer.material_names)} materials on "
          f"{device.info.adapter_name}", file=sys.stderr)
    tracer.compile()

    def render(kind: str, samples: int):
        with tqdm(total=samples, unit="spp", desc=f"{kind:>9}", leave=False, file=sys.stderr) as bar:
            return tracer.render(samples, seed, max_depth=max_depth, width=width, height=height,
                                 kinds=tracer.kinds_for(kind), progress=bar.update)

    ref = render("reference", spp)
    neural = render("neural", spp)
    timings = {"reference": _timing(ref), "neural": _timing(neural),
               "speedup": ref.ms_per_spp / max(neural.ms_per_spp, 1e-9)}
    extra_images, extra_metrics = {}, {}
    maps = error_maps(ref.image, neural.image)
    if args.equal_time:
        equal_spp = max(1, int(ref.seconds / max(neural.seconds / spp, 1e-9)))
        equal = render("neural", equal_spp)
        timings["equal_time"] = _timing(equal)
        extra_images["neural_equal_time"] = equal.image
        extra_metrics[f"equal time ({equal_spp} spp)"] = metrics(error_maps(ref.image, equal.image, maps.exposure),
                                                              ref.aovs["material_id"], tracer.material_names)
    timing_spp = args.material_timing_spp
    if timing_spp > 0:
        print(f"timing each material alone ({timing_spp} spp per render)", file=sys.stderr)
        timings.update(_material_timings(tracer, timing_spp, seed, max_depth, width, height))
        timings["material_spp"] = timing_spp
    dropped = ref.dropped_samples + neural.dropped_samples
    warnings = [f"{dropped} sample(s) with non-finite values were left out of the means"] if dropped else []
    _warn(warnings)
    names = ("reference", "neural")
    report = ComparisonReport(
        title=f"neumat compare: {scene.name}", names=names, reference=ref.image, test=neural.image,
        flip_magma=maps.flip_magma,
        figure=side_by_side(ref.image, neural.image, maps, names, f"{scene.name}: reference vs neural",
                            f"{width}x{height}, {spp} spp, FLIP {float(maps.flip.mean()):.4f}"),
        metrics=metrics(maps, ref.aovs["material_id"], tracer.material_names), exposure=maps.exposure,
        context={"scene": str(scene.path), "device": device.info.adapter_name, "resolution": f"{width}x{height}",
                 "samples per pixel": spp, "max depth": max_depth, "seed": seed,
                 "wall time": f"{time.perf_counter() - wall:.0f} s"},
        timings=timings, extra_images=extra_images, extra_metrics=extra_metrics, warnings=warnings,
        max_flip=args.max_flip)
    return _finish(out_dir, report, names)


def _timing(result) -> dict:
    return {"spp": result.spp, "seconds": result.seconds, "ms_per_spp": result.ms_per_spp}


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
    from neumat.renderer.compare.fidelity import check_inputs, measure, samplings
    from neumat.renderer.compare.reference_cache import ReferenceCache

    _check_material_options(args)
    inputs = check_inputs(args.material, args.source, args.views, args.size)
    reference, neural = samplings(args.spp, args.reference_minutes, args.reference_max_spp, args.neural_minutes)
    out_dir = prepare_output_dir(args.output or f"compare_{inputs.material.name}")
    device = create_device(args.device)
    fidelity = measure(inputs, device, reference, neural, ReferenceCache(args.reference_cache),
                       refresh=args.fresh_reference, log=lambda line: print(line, file=sys.stderr, flush=True))
    written = write_fidelity_report(out_dir, fidelity)
    summary = fidelity.summary()
    print("  ".join(FIDELITY_HEADER[:4] + ["ref. noise", "neural noise"]))
    for row in fidelity_rows(summary):
        name, flip, flip_material, psnr, *_ = row
        print(f"{name:<13} {flip:.4f}  {'-' if flip_material is None else f'{flip_material:.4f}':>6}  "
              f"{psnr:6.2f}  {row[6]:.4f}  {row[9]:.4f}")
    print(f"wrote {len(written)} files to {out_dir}; open {out_dir / 'report.html'}")
    if args.max_flip is not None and summary["mean_flip"] > args.max_flip:
        print(f"mean FLIP {summary['mean_flip']:.4f} exceeds --max-flip {args.max_flip:g}", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    _check_max_flip(args.max_flip)
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
    p = sub.add_parser("compare", help="compare neural against reference renders (FLIP, PSNR, timings, HTML report)",
                       description="Render a scene with reference and with neural materials and compare them "
                                   "(whole image and per material), or compare any two images of the same size. "
                                   "Exit code 1 when --max-flip is exceeded, 2 on bad input.")
    p.add_argument("inputs", nargs="*", metavar="SCENE | A.exr B.exr",
                   help="a scene .toml (or built-in name), or a reference and a test image")
    p.add_argument("-o", "--output", default=None, metavar="DIR",
                   help="output folder (default: compare_<scene> or compare_<a>_<b>)")
    p.add_argument("--spp", type=int, default=None, help="samples per pixel of both renders (default: the scene's)")
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
    add_device_flag(p)
    p.set_defaults(func=cmd_compare)
