"""`neumat compare --material`: how close a neural material is to its reference material, measured
on rendered views (renderer/compare/views.py) the way the paper measures it: mean FLIP over the
views, each rendered to convergence.

Each side of a view is rendered as two independent halves (different seeds, equal samples per
pixel); the FLIP between the halves measures that side's own noise, and the image is their mean.
A side is rendered progressively (FIRST_SPP per half, then doubling) until its halves' FLIP is at
most the noise target, or a cap: MAX_SPP per view, and a time budget shared by the views (what a
view leaves unused goes to the next). The reference, rendered once and cached, stops at the latest
REFERENCE_MINUTES after the comparison starts, not counting the neural renders: loading and
compiling (minutes on lavapipe when the shaders changed) come out of its budget, so a cold run
keeps its time whatever they take. The neural side, rendered on every run, has NEURAL_MINUTES of
rendering. `--spp` fixes the neural
side's spp instead. On a GPU both sides reach the target long before their caps; on lavapipe the
time budgets stop them, and the output says so per view.

Why the neural side is converged too: the FLIP between a noisy neural render and a converged
reference counts the neural render's noise as error. The report gives both sides' halves FLIP next
to the measured FLIP, and per view a noise floor: the FLIP between (reference half A + neural half
A) / 2 and (reference half B + neural half B) / 2. Those two images have the same expected value and
their difference has exactly the noise variance of (reference - neural) as measured, so their FLIP is
what the measurement would read if the neural material were perfect: a measured FLIP near its floor
cannot resolve the material's error, only the noise.

Converged references are cached (renderer/compare/reference_cache.py): a second comparison of the same
material renders only the neural side."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.heartbeat import heartbeat
from neumat.renderer.compare.views import SHAPES, VIEWS, View, shape_scene, view_camera
from neumat.renderer.core.paths import ASSET_DIR
from neumat.renderer.compare.reference_cache import ReferenceCache, reference_key

NOISE_TARGET = 0.01       # FLIP between a side's two halves at which it counts as converged
FIRST_SPP = 16            # per half, before the first check
STEP_SECONDS = 15.0       # longest render between two checks, so progress lines keep coming
MIN_STEP_FRACTION = 8     # under the time cap, a step adds at least 1/8 of the samples so far
DEFAULT_SIZE = 128        # pixels, square
MIN_SIZE, MAX_SIZE = 8, 2048
MAX_DEPTH = 8
REFERENCE_MINUTES = 8.0   # the references end at most this long after the start (cold cache)
NEURAL_MINUTES = 0.5      # the neural side's time budget, all views together (every run)
MAX_SPP = 65536           # per view and side, both halves together
SEEDS = {"reference": (1, 2), "neural": (3, 4)}
MATERIAL_DIR = ASSET_DIR / "materials"


@dataclass(frozen=True)
class Sampling:
    """How one side is rendered: to `target` halves FLIP within `max_spp` (both halves) and
    `max_seconds`, or exactly `fixed_spp` when given."""
    target: float = NOISE_TARGET
    max_spp: int = MAX_SPP
    max_seconds: float | None = None   # all views together: each view gets an equal share of what is left
    fixed_spp: int | None = None
    from_start: bool = False           # max_seconds counts from the start: setup included (not the other side)

    def for_view(self, spent: float, views_left: int) -> "Sampling":
        """One view's sampling: an equal share of the seconds left after `spent`."""
        share = None if self.max_seconds is None else max(0.0, self.max_seconds - spent) / max(views_left, 1)
        return Sampling(self.target, self.max_spp, share, self.fixed_spp)

    def describe(self) -> dict:
        if self.fixed_spp:
            return {"rule": "fixed spp", "spp": self.fixed_spp}
        return {"rule": "until the halves' FLIP <= target, or a cap", "target_noise_flip": self.target,
                "max_spp": self.max_spp, "max_seconds": self.max_seconds,
                "seconds_count": "from the start, loading and compiling included, neural renders not" if self.from_start
                else "rendering only"}


@dataclass
class Halves:
    """One side of one view."""
    image: np.ndarray            # the mean of the two halves, linear HxWx3
    spp: int                     # both halves together
    seconds: float               # rendering and checks
    noise_flip: float            # FLIP between the two halves
    stopped: str                 # 'target', 'spp cap', 'time cap', 'fixed spp'
    cached: bool = False
    aovs: dict | None = None     # of the first half (the neural side's: material mask and lod)
    halves: tuple[np.ndarray, np.ndarray] | None = None  # the two half images (None: cached without them)

    def record(self) -> dict:
        return {"spp": self.spp, "seconds": self.seconds, "noise_flip": self.noise_flip, "stopped": self.stopped,
                "cached": self.cached, "ms_per_spp": 1000.0 * self.seconds / max(self.spp, 1)}


def render_halves(tracer, kind: str, size: int, sampling: Sampling, log: Callable[[str], None], label: str) -> Halves:
    """Renders `kind` ('reference' | 'neural') on the tracer's current camera as two halves."""
    from neumat.renderer.images.metrics import flip_error
    from neumat.renderer.pathtracer.tracer import Accumulator

    kinds = tracer.kinds_for(kind)
    halves = [Accumulator(tracer, size, size, seed, MAX_DEPTH, kinds=kinds) for seed in SEEDS[kind]]
    cap = max(1, (sampling.fixed_spp or sampling.max_spp) // 2)  # per half
    start, n, per_spp = time.perf_counter(), 0, None
    while True:
        want = min(max(2 * n, FIRST_SPP), cap)
        if per_spp is not None:  # seconds per sample per pixel of one half
            want = min(want, n + max(1, int(STEP_SECONDS / (2 * per_spp))))
            if sampling.max_seconds is not None and not sampling.fixed_spp:
                left = sampling.max_seconds - (time.perf_counter() - start)
                afford = int(left / (2 * per_spp))
                if afford < max(1, n // MIN_STEP_FRACTION):  # too little time left to lower the noise
                    stopped = "time cap"
                    break
                want = min(want, n + afford)
        for acc in halves:
            acc.add(want - n)
        n = want
        per_spp = sum(acc.seconds for acc in halves) / (2 * n)
        a, b = (acc.result() for acc in halves)
        _, noise = flip_error(a.image, b.image, magma=False)
        log(f"{label}: {2 * n} spp, halves FLIP {noise:.4f}, {time.perf_counter() - start:.0f} s")
        if not sampling.fixed_spp and noise <= sampling.target:
            stopped = "target"
            break
        if n >= cap:
            stopped = "fixed spp" if sampling.fixed_spp else "spp cap"
            break
    return Halves(0.5 * (a.image + b.image), 2 * n, time.perf_counter() - start, noise, stopped, aovs=a.aovs,
                  halves=(a.image, b.image))


@dataclass
class Inputs:
    """A checked asset and the material graph it was baked from."""
    asset_path: Path
    asset: object                # renderer.neural.asset.NeuralAsset
    source: Path
    material: object             # renderer.materials.graph.Material
    views: tuple[View, ...]
    size: int                    # pixels per view, square


def _source_candidates(asset_path: Path, file_name: str) -> list[Path]:
    """Where an asset's material file is looked for: beside the asset, in a `materials` folder
    beside the asset's folder (assets/neural -> assets/materials), in the bundled materials."""
    found = [asset_path.parent / file_name, asset_path.parent.parent / "materials" / file_name,
             MATERIAL_DIR / file_name]
    return list(dict.fromkeys(p.resolve() for p in found))


def samplings(spp: int | None = None, reference_minutes: float | None = None,
              reference_max_spp: int | None = None, neural_minutes: float | None = None
              ) -> tuple[Sampling, Sampling]:
    """(reference, neural) sampling from the command's options (None: the defaults); `spp` is the
    neural side's fixed spp per view. Raises NeumatError for values out of range."""
    minutes = REFERENCE_MINUTES if reference_minutes is None else reference_minutes
    max_spp = MAX_SPP if reference_max_spp is None else reference_max_spp
    neural_minutes = NEURAL_MINUTES if neural_minutes is None else neural_minutes
    if not (minutes > 0 and neural_minutes > 0 and max_spp >= 2):
        raise NeumatError("--reference-minutes and --neural-minutes must be > 0 and --reference-max-spp >= 2, got "
                          f"{minutes:g}, {neural_minutes:g}, {max_spp}")
    if spp is not None and spp < 2:
        raise NeumatError(f"--spp must be >= 2 with --material (two halves), got {spp}")
    neural = Sampling(fixed_spp=spp) if spp else Sampling(max_seconds=60.0 * neural_minutes)
    return Sampling(max_spp=max_spp, max_seconds=60.0 * minutes, from_start=True), neural


def check_inputs(asset_path: str | Path, source: str | Path | None = None, views: int | None = None,
                 size: int | None = None) -> Inputs:
    """Checks everything before any rendering or writing: the view count and size, the asset, its
    material file (given, or found from the manifest's source.file) and that the asset was baked
    from that file as it is now. Raises NeumatError with one message."""
    from neumat.renderer.materials.graph import load_material
    from neumat.renderer.materials.materialx import split_reference
    from neumat.renderer.neural.asset import load_asset

    views = len(VIEWS) if views is None else views
    size = DEFAULT_SIZE if size is None else size
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise NeumatError(f"--size must be {MIN_SIZE} to {MAX_SIZE} pixels, got {size}")
    if not 1 <= views <= len(VIEWS):
        raise NeumatError(f"--views must be 1 to {len(VIEWS)} (the fixed views: "
                          f"{', '.join(v.name for v in VIEWS)}), got {views}")
    asset_path = Path(asset_path).resolve()
    asset = load_asset(asset_path)
    if source is None:
        file_name = str(asset.manifest.get("source", {}).get("file", ""))
        tried = _source_candidates(asset_path, file_name) if file_name else []
        source = next((p for p in tried if split_reference(p)[0].is_file()), None)
        if source is None:
            where = "; tried " + ", ".join(map(str, tried)) if tried else " (its manifest names no source.file)"
            raise NeumatError(f"{asset_path.name}: cannot find the material it was baked from, "
                              f"{file_name or '?'}{where}; point at it with --source FILE.toml")
    source = Path(source).resolve()
    if not split_reference(source)[0].is_file():  # FILE.mtlx#Material names a file and a material in it
        raise NeumatError(f"--source {source}: no such material file")
    material = load_material(source)
    if material.source_hash != asset.source_hash:
        raise NeumatError(f"{asset_path.name} is stale: it was baked from another version of {source} "
                          f"(asset source_hash {asset.source_hash[:12]}, the file now {material.source_hash[:12]}); "
                          f"rebake it with `neumat bake {source} -o {asset_path}`, or pass the material it was "
                          "baked from with --source")
    return Inputs(asset_path, asset, source, material, VIEWS[:views], size)


@dataclass
class ViewResult:
    view: View
    reference: Halves
    neural: Halves
    maps: object                 # renderer.compare.comparison.ErrorMaps
    metrics: dict                # renderer.compare.comparison.metrics(): image and per group (material, background)
    lod: list[float] | None      # the neural render's latent level at 5 / 50 / 95 % of the material's pixels
    coverage: float              # share of pixels showing the material
    noise_floor: float | None    # FLIP that noise alone would give (module doc); None without the reference's halves

    def record(self, material: str) -> dict:
        m, groups = self.metrics["image"], self.metrics["materials"]
        return {"name": self.view.name, "shows": self.view.shows, "flip": m["flip"], "psnr_db": m["psnr_db"],
                "relative_mse": m["relative_mse"], "flip_material_pixels": groups.get(material, {}).get("flip"),
                "coverage": self.coverage, "latent_lod_p5_p50_p95": self.lod, "noise_floor_flip": self.noise_floor,
                "reference": self.reference.record(), "neural": self.neural.record()}


@dataclass
class Fidelity:
    """What `measure` found: per view and overall."""
    inputs: Inputs
    views: list[ViewResult]
    reference_sampling: Sampling
    neural_sampling: Sampling
    device: str
    seconds: dict                # wall, setup (loading and compiling), reference, neural
    cache_folder: Path
    mlp: str = "auto"            # the neural side's MLP path as resolved (loop, coopvec or buffer)

    def summary(self) -> dict:
        """The metrics.json payload (less the file's format header)."""
        name = self.inputs.material.name
        views = [v.record(name) for v in self.views]
        ref_noise = [v.reference.noise_flip for v in self.views]
        neural_noise = [v.neural.noise_flip for v in self.views]
        floors = [v.noise_floor for v in self.views]
        return {
            "material": name, "asset": str(self.inputs.asset_path), "source": str(self.inputs.source),
            "source_hash": self.inputs.material.source_hash, "evaluator": self.inputs.asset.evaluator,
            "mlp": self.mlp, "device": self.device, "size": [self.inputs.size, self.inputs.size], "max_depth": MAX_DEPTH,
            "mean_flip": float(np.mean([v["flip"] for v in views])),
            "mean_psnr_db": _mean_psnr([v["psnr_db"] for v in views]),
            "reference_noise_flip": max(ref_noise), "reference_noise_flip_mean": float(np.mean(ref_noise)),
            "neural_noise_flip": max(neural_noise), "neural_noise_flip_mean": float(np.mean(neural_noise)),
            "noise_floor_flip_mean": None if None in floors else float(np.mean(floors)),
            "reference_sampling": self.reference_sampling.describe(),
            "neural_sampling": self.neural_sampling.describe(),
            "reference_cache": str(self.cache_folder), "seconds": self.seconds, "views": views,
        }


def record_in_report(report_json: Path, summary: dict) -> Path:
    """Adds the measured fidelity to an asset's bake report (report/report.json): `render_mean_flip`
    and a `render_fidelity` block (per-view FLIP, both sides' noise, device, sampling). The file is
    rewritten atomically; every other key stays as the bake wrote it."""
    import json

    from neumat.renderer.core.atomic_files import atomic_output

    try:
        report = json.loads(report_json.read_text())
    except FileNotFoundError:
        raise NeumatError(f"{report_json}: the asset has no bake report to record the fidelity in") from None
    except (OSError, ValueError) as exc:
        raise NeumatError(f"{report_json}: not a readable bake report ({exc})") from None
    if not isinstance(report, dict) or report.get("format") != "neumat-bake-report":
        raise NeumatError(f"{report_json}: format: not a neumat bake report")
    report["render_mean_flip"] = summary["mean_flip"]
    report["render_fidelity"] = {
        "mean_flip": summary["mean_flip"], "mean_psnr_db": summary["mean_psnr_db"],
        "views": {v["name"]: v["flip"] for v in summary["views"]},
        "reference_noise_flip_mean": summary["reference_noise_flip_mean"],
        "neural_noise_flip_mean": summary["neural_noise_flip_mean"],
        "noise_floor_flip_mean": summary.get("noise_floor_flip_mean"),
        "device": summary["device"], "size": summary["size"],
        "reference_sampling": summary["reference_sampling"], "neural_sampling": summary["neural_sampling"],
        "measured": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + " UTC",
    }
    with atomic_output(report_json) as tmp:
        Path(tmp).write_text(json.dumps(report, indent=1) + "\n")
    return report_json


def _mean_psnr(values: list[float]) -> float:
    return math.inf if any(math.isinf(v) for v in values) else float(np.mean(values))


def noise_floor(ref: Halves, neural: Halves) -> float | None:
    """The FLIP that noise alone would give (module doc), or None when a side has no halves."""
    from neumat.renderer.images.metrics import flip_error

    if ref.halves is None or neural.halves is None:
        return None
    (ra, rb), (na, nb) = ref.halves, neural.halves
    return float(flip_error(0.5 * (ra + na), 0.5 * (rb + nb), magma=False)[1])


def _group_metrics(ref: Halves, neural: Halves, name: str) -> tuple[object, dict, np.ndarray]:
    from neumat.renderer.compare.comparison import error_maps, metrics

    mask = neural.aovs["material_id"] >= 0
    maps = error_maps(ref.image, neural.image)
    return maps, metrics(maps, np.where(mask, 0.0, -1.0), [name]), mask


def measure(inputs: Inputs, device, reference: Sampling | None = None, neural: Sampling | None = None,
            cache: ReferenceCache | None = None, refresh: bool = False, log: Callable[[str], None] = print,
            mlp: str = "auto") -> Fidelity:
    """Renders every view's neural side, and its reference unless the cache has it (or `refresh`),
    and compares them; default samplings and cache from `samplings()` and ReferenceCache(). `mlp`:
    the neural side's MLP path (its images agree to 1e-3; 'buffer' compiles nothing for a new asset)."""
    from neumat.renderer.pathtracer.tracer import prepare_render

    wall = time.perf_counter()
    default_reference, default_neural = samplings()
    reference, neural = reference or default_reference, neural or default_neural
    cache = cache or ReferenceCache()
    size = inputs.size
    name = inputs.material.name
    settings = {"max_depth": MAX_DEPTH, "target": reference.target, "seeds": SEEDS["reference"]}
    keys = {v.name: reference_key(inputs.material.source_hash, v.key(), size, settings) for v in inputs.views}
    cached = {} if refresh else {n: hit for n, k in keys.items() if (hit := cache.load(k)) is not None}
    to_render = [v for v in inputs.views if v.name not in cached]
    log(f"{name}: {len(inputs.views)} views at {size}x{size}; reference cached for {len(cached)}, "
        f"rendering {len(to_render)}" + (f" (until {reference.max_seconds / 60:.1f} min from now)"
                                         if to_render and reference.max_seconds else ""))
    tracers, setup = {}, 0.0
    results, ref_seconds, neural_seconds = [], 0.0, 0.0
    for i, view in enumerate(inputs.views):
        t0 = time.perf_counter()
        if view.shape not in tracers:
            log(f"loading the {view.shape}" + ("" if tracers else " and compiling the path tracer (seconds from "
                                                                  "the shader cache, minutes on lavapipe after a "
                                                                  "shader change)"))
            scene = shape_scene(SHAPES[view.shape], inputs.source, inputs.asset_path, size)
            tracers[view.shape], _ = prepare_render(device, scene, "reference", switchable=True, mlp=mlp)
            with heartbeat("  still compiling"):
                tracers[view.shape].compile()
        tracer = tracers[view.shape]
        tracer.scene.camera = view_camera(view, size)
        setup += time.perf_counter() - t0
        label = f"[{i + 1}/{len(inputs.views)}] {view.name}"
        if view.name in cached:
            image, rec, halves = cached[view.name]
            ref = Halves(image, rec["spp"], rec["seconds"], rec["noise_flip"], rec["stopped"], cached=True,
                         halves=halves)
            log(f"{label}: reference from the cache ({ref.spp} spp, halves FLIP {ref.noise_flip:.4f})")
        else:
            spent = time.perf_counter() - wall - neural_seconds if reference.from_start else ref_seconds
            ref = render_halves(tracer, "reference", size, reference.for_view(spent, len(to_render)), log,
                                f"{label} reference")
            to_render.remove(view)
            ref_seconds += ref.seconds
            cache.store(keys[view.name], ref.image, ref.record(), ref.halves)
        out = render_halves(tracer, "neural", size, neural.for_view(neural_seconds, len(inputs.views) - i), log,
                            f"{label} neural")
        neural_seconds += out.seconds
        maps, m, mask = _group_metrics(ref, out, name)
        lod = out.aovs["lod"][mask]
        results.append(ViewResult(view, ref, out, maps, m,
                                  [float(x) for x in np.percentile(lod, [5, 50, 95])] if lod.size else None,
                                  float(mask.mean()), noise_floor(ref, out)))
        floor = results[-1].noise_floor
        log(f"{label}: FLIP {m['image']['flip']:.4f} (noise alone: "
            + ("n/a, the cached reference has no halves" if floor is None else f"{floor:.4f}")
            + f"), PSNR {m['image']['psnr_db']:.2f} dB "
            f"(reference {ref.spp} spp, halves FLIP {ref.noise_flip:.4f}; neural {out.spp} spp, "
            f"halves FLIP {out.noise_flip:.4f})")
    seconds = {"wall": time.perf_counter() - wall, "setup": setup, "reference": ref_seconds, "neural": neural_seconds}
    mlps = {t.neural_set.mlp for t in tracers.values() if t.neural_set is not None}
    return Fidelity(inputs, results, reference, neural, device.info.adapter_name, seconds, cache.folder,
                    mlps.pop() if len(mlps) == 1 else mlp)
