"""The scene comparison job behind `neumat compare SCENE` (and the benchmarks): one path tracer with
both kinds of every material bound (compiled once) renders the scene with every object's reference
material, then with its neural one, at equal samples per pixel and the same seed; optionally a
neural render given the reference's time (equal time), and per-material frame times from short
renders that shade only that material (every other surface black), since a path tracer cannot time
one material inside a full frame. `compare_images` compares any two images of the same size."""

import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

from neumat.renderer.compare.comparison import (check_same_size, checked_image, error_maps, metrics,
                                                side_by_side)
from neumat.renderer.compare.report import ComparisonReport
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.heartbeat import heartbeat
from neumat.renderer.materials.query import MATERIAL_KINDS

MATERIAL_TIMING_SPP = 2  # spp of each per-material timing render


def compare_images(a_path: Path, b_path: Path, max_flip: float | None = None) -> ComparisonReport:
    """A (reference) against B (test): both read, checked and of the same size."""
    from neumat.renderer.images.io import read_image

    a = checked_image(a_path.name, read_image(a_path))
    b = checked_image(b_path.name, read_image(b_path))
    check_same_size(a.image, b.image, (str(a_path), str(b_path)))
    maps = error_maps(a.image, b.image)
    names = (a_path.name, b_path.name)
    h, w = a.image.shape[:2]
    return ComparisonReport(
        title=f"neumat compare: {a_path.name} vs {b_path.name}", names=names, reference=a.image, test=b.image,
        flip_magma=maps.flip_magma, figure=side_by_side(a.image, b.image, maps, names, f"{a_path.name} vs {b_path.name}"),
        metrics=metrics(maps), exposure=maps.exposure,
        context={"reference": str(a_path), "test": str(b_path), "size": f"{w}x{h}"},
        warnings=a.warnings + b.warnings, max_flip=max_flip)


def objects_by_material(tracer) -> dict[str, list[int]]:
    """Material name -> the objects showing it (by their reference material)."""
    groups: dict[str, list[int]] = {}
    for i, choices in enumerate(tracer.assignment.object_choices):
        if "reference" in choices:
            groups.setdefault(tracer.material_names[choices["reference"]], []).append(i)
    return groups


def material_timings(tracer, spp: int, seed: int, max_depth: int, width: int, height: int) -> dict:
    """ms/spp of renders that shade only one material (reference, then neural), and of none (the
    baseline: camera rays, shadows and the environment)."""
    def ms_per_spp(kinds) -> float:
        return tracer.render(spp, seed, max_depth=max_depth, width=width, height=height, kinds=kinds).ms_per_spp

    n = len(tracer.scene.objects)
    out = {}
    baseline = ms_per_spp([None] * n)
    for name, objects in objects_by_material(tracer).items():
        t = {f"{kind}_ms_per_spp": ms_per_spp([kind if i in objects else None for i in range(n)])
             for kind in MATERIAL_KINDS}
        t["speedup"] = t["reference_ms_per_spp"] / max(t["neural_ms_per_spp"], 1e-9)
        out[name] = t
    return {"baseline_ms_per_spp": baseline, "materials": out}


def check_comparable(scene) -> None:
    """NeumatError naming every object of `scene` without a neural asset (before anything runs)."""
    from neumat.renderer.scene.scene_file import resolve_materials

    assignment = resolve_materials(scene, "reference", switchable=True)
    missing = [f"{scene.objects[i].name}: {why}" for i, why in assignment.unavailable.items()]
    if missing:
        raise NeumatError(f"{scene.path.name}: compare needs a neural asset for every material; "
                          + "; ".join(missing))


def switchable_tracer(device, scene, log: Callable[[str], None] = lambda line: None, mlp: str = "auto"):
    """The scene's path tracer with both kinds of every material bound (neural ones on MLP path
    `mlp`), compiled."""
    from neumat.renderer.pathtracer.tracer import prepare_render

    check_comparable(scene)
    tracer, _ = prepare_render(device, scene, "reference", switchable=True, mlp=mlp)
    log(f"compiling the path tracer with {len(tracer.material_names)} materials on {device.info.adapter_name}")
    with heartbeat("  still compiling"):
        tracer.compile()
    return tracer


def _timing(result) -> dict:
    return {"spp": result.spp, "seconds": result.seconds, "ms_per_spp": result.ms_per_spp}


def compare_scene(device, scene, spp: int, max_depth: int, seed: int, width: int, height: int,
                  equal_time: bool = False, material_timing_spp: int = MATERIAL_TIMING_SPP,
                  max_flip: float | None = None, log: Callable[[str], None] = lambda line: None,
                  progress: Callable[[str, int], object] | None = None, mlp: str = "auto") -> ComparisonReport:
    """Reference against neural renders of `scene` (see the module doc). `progress(label, total)`
    returns a context manager with an `update(n)` method (a tqdm bar), or None for no bars."""
    wall = time.perf_counter()
    tracer = switchable_tracer(device, scene, log, mlp)

    def render(kind: str, samples: int):
        with (progress(kind, samples) if progress else nullcontext()) as bar:
            return tracer.render(samples, seed, max_depth=max_depth, width=width, height=height,
                                 kinds=tracer.kinds_for(kind), progress=bar.update if bar is not None else None)

    ref = render("reference", spp)
    neural = render("neural", spp)
    timings = {"reference": _timing(ref), "neural": _timing(neural),
               "speedup": ref.ms_per_spp / max(neural.ms_per_spp, 1e-9)}
    extra_images, extra_metrics = {}, {}
    maps = error_maps(ref.image, neural.image)
    if equal_time:
        equal_spp = max(1, int(ref.seconds / max(neural.seconds / spp, 1e-9)))
        equal = render("neural", equal_spp)
        timings["equal_time"] = _timing(equal)
        extra_images["neural_equal_time"] = equal.image
        extra_metrics[f"equal time ({equal_spp} spp)"] = metrics(error_maps(ref.image, equal.image, maps.exposure),
                                                              ref.aovs["material_id"], tracer.material_names)
    if material_timing_spp > 0:
        log(f"timing each material alone ({material_timing_spp} spp per render)")
        timings.update(material_timings(tracer, material_timing_spp, seed, max_depth, width, height))
        timings["material_spp"] = material_timing_spp
    dropped = ref.dropped_samples + neural.dropped_samples
    warnings = [f"{dropped} sample(s) with non-finite values were left out of the means"] if dropped else []
    names = MATERIAL_KINDS
    return ComparisonReport(
        title=f"neumat compare: {scene.name}", names=names, reference=ref.image, test=neural.image,
        flip_magma=maps.flip_magma,
        figure=side_by_side(ref.image, neural.image, maps, names, f"{scene.name}: reference vs neural",
                            f"{width}x{height}, {spp} spp, FLIP {float(maps.flip.mean()):.4f}"),
        metrics=metrics(maps, ref.aovs["material_id"], tracer.material_names), exposure=maps.exposure,
        context={"scene": str(scene.path), "device": device.info.adapter_name, "resolution": f"{width}x{height}",
                 "samples per pixel": spp, "max depth": max_depth, "seed": seed,
                 "wall time": f"{time.perf_counter() - wall:.0f} s"},
        timings=timings, extra_images=extra_images, extra_metrics=extra_metrics, warnings=warnings,
        max_flip=max_flip)
