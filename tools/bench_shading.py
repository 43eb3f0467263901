"""Material shading throughput: the reference layered material against neural versions of it
(evaluators 2x16, 2x32, 3x64, and 2x32 with half/difference direction features or with the analytic
lobe, docs/baking.md "Narrow peaks") on the current device, side by side in one run, and the cost of
dispatching many distinct neural materials at once (the paper's scalability study, 1 to 25).

"Material shading" is what a path vertex does with its material, per query: instantiate (reference:
fetch and filter the layer parameters; neural: pick the latent level, read the latent, decode the
frames), eval towards a light, sample the continuation (neural: sampler decode + eval at the sampled
direction). Every kind runs the same query kernel (shaders/neural/neural_queries.slang shadeQuery) on
the same queries (uniform uv, lod uniform over the pyramid, wi and wo uniform on the hemisphere).
Each configuration is dispatched --repeats times after a warm-up; the table gives the median.
Compile time (Slang + pipeline creation, cached on disk) is reported separately.

Neural assets: `--asset PATH` (repeatable) takes baked `.neumat` assets, one per variant (network
and direction features); variants without one get an untrained asset of the right architecture
(random weights: the speed does not depend on training), and the output says so.

    python tools/bench_shading.py [--material assets/materials/car_paint.toml] [--queries 262144]
        [--repeats 5] [--resolution 256] [--scalability 1,2,4,8,16,25] [--json out.json] [--device lavapipe]
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import slangpy as spy  # noqa: E402

from neumat.renderer.core.device import create_device, device_report  # noqa: E402
from neumat.renderer.core.kernels import COMPILE_STATS, compute_kernel  # noqa: E402
from neumat.renderer.materials.query import QUERY_STRIDE  # noqa: E402
from neumat.renderer.neural import material as nm  # noqa: E402
from neumat.renderer.materials import reference as ref  # noqa: E402
from neumat.renderer.neural.asset import load_asset  # noqa: E402
from neumat.renderer.core.paths import ASSET_DIR  # noqa: E402

# label -> (network spec, direction features): the neural variants, each its own column
VARIANTS = {"2x16": ("2x16", "vectors"), "2x32": ("2x32", "vectors"), "2x32 hd": ("2x32", "half_difference"),
            "2x32+lobe": ("2x32+lobe", "vectors"), "3x64": ("3x64", "vectors")}
SIZES = tuple(VARIANTS)
REFERENCE_MODULE = "neural/reference_shading.slang"
USAGE = spy.BufferUsage.shader_resource | spy.BufferUsage.unordered_access


def variant_of(asset) -> str:
    """The VARIANTS label of an asset."""
    return asset.network + (" hd" if asset.directions == "half_difference" else "")


def untrained_asset(material, size: str, resolution: int, seed: int, directory: Path) -> Path:
    """An asset with random weights and latents (every weight non-zero, frames and lobe included)
    for a VARIANTS label (or a network spec)."""
    import torch

    from neumat.training.export import save_asset
    from neumat.training.model import NeuralMaterial, NeuralMaterialConfig

    gen = torch.Generator().manual_seed(seed)
    spec, directions = VARIANTS.get(size, (size, "vectors"))
    model = NeuralMaterial(NeuralMaterialConfig(resolution=resolution, evaluator=spec, directions=directions))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    slug = size.replace(" ", "_").replace("+", "_")
    return save_asset(directory / f"{material.name}_{slug}_seed{seed}.neumat", model, material,
                      {"untrained": True, "seed": seed}, {}, {})


def macs_per_query(asset) -> int:
    """Multiply-adds of one shading query on the loop path: frames, the lobe's layer, the latent's share
    of the evaluator's first layer, two evaluator calls without it (eval and the sample's eval), the
    sampler. (The lobe's own analytic evaluation is not multiply-adds: its cost shows in the timings.)"""
    def layer_macs(name, skip_first_cols=0):
        return sum(l.inputs * l.outputs for l in asset.networks[name].layers) - skip_first_cols
    ev_first = asset.networks["evaluator"].layers[0]
    latent_share = ev_first.outputs * (ev_first.inputs - 12)
    frames = layer_macs("frames") if "frames" in asset.networks else 0
    lobe = layer_macs("lobe") if "lobe" in asset.networks else 0
    return frames + lobe + latent_share + 2 * layer_macs("evaluator", latent_share) + layer_macs("sampler")


def upper_hemisphere(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2])
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


class Runner:
    """One shading kernel with its query, result and id buffers, dispatched over all queries."""

    def __init__(self, device, kernel, bindings: dict, queries: np.ndarray):
        self.device, self.kernel = device, kernel
        self.n = queries.shape[0]
        self.query_buf = device.create_buffer(data=np.ascontiguousarray(queries, np.float32).ravel(), struct_size=4,
                                              usage=spy.BufferUsage.shader_resource)
        self.result_buf = device.create_buffer(element_count=self.n, struct_size=4, usage=USAGE)
        self.vars = {**bindings, "queries": self.query_buf, "results": self.result_buf, "count": self.n,
                     "seed": 0, "firstIndex": 0}

    def run(self) -> tuple[float, float]:
        """(wall seconds, CPU seconds of this process: the driver's threads on a software device)."""
        start, cpu = time.perf_counter(), time.process_time()
        self.kernel.dispatch([self.n, 1, 1], vars=self.vars)
        self.device.wait()
        return time.perf_counter() - start, time.process_time() - cpu

    def checksum(self) -> float:
        return float(np.nansum(self.result_buf.to_numpy().view(np.float32)[:self.n]))


def measure(runners: dict[str, Runner], repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds per configuration; the configurations take turns so that load
    changes on a shared machine hit all alike."""
    times: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    for r in runners.values():
        r.run()  # warm-up (first-use compilation in software drivers)
    for _ in range(repeats):
        for k, r in runners.items():
            times[k].append(r.run())
    return {k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default=str(ASSET_DIR / "materials" / "car_paint.toml"))
    parser.add_argument("--asset", action="append", default=[],
                        help=f"a baked .neumat asset (one per variant: {', '.join(VARIANTS)})")
    parser.add_argument("--queries", type=int, default=None, help="queries per dispatch (default 262144 on "
                        "lavapipe, 4194304 on a GPU)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=256, help="material and latent level-0 resolution")
    parser.add_argument("--scalability", default="1,2,4,8,16,25",
                        help="numbers of distinct neural materials per dispatch ('' skips the study)")
    parser.add_argument("--mlp", default="auto", choices=nm.MLP_PATHS)
    parser.add_argument("--device", default=None, help="auto, nvidia, gpu, lavapipe, an index or part of a name")
    parser.add_argument("--json", default=None, help="also write the JSON to this file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--breakdown", action="store_true",
                        help="also time the parts of a neural shading query (where the time goes)")
    args = parser.parse_args(argv)

    from neumat.renderer.materials.graph import load_material

    device = create_device(args.device)
    report = device_report(device)
    software = report.kind.startswith("software")
    n = args.queries or (1 << 18 if software else 1 << 22)
    material_def = load_material(args.material)
    print(f"device: {report.adapter} ({report.kind}); {n} queries per dispatch, median of {args.repeats}")

    # --- materials -------------------------------------------------------------------------------
    compile_start = COMPILE_STATS.seconds
    t0 = time.perf_counter()
    reference = ref.ReferenceMaterial.from_file(device, args.material, resolution=args.resolution)
    tmp = Path(tempfile.mkdtemp(prefix="neumat-bench-"))
    given = {}
    for p in args.asset:
        a = load_asset(p)
        given[variant_of(a)] = Path(p)
    sources, neural = {}, {}
    for k, size in enumerate(SIZES):
        if size in given:
            path, sources[size] = given[size], f"baked asset {given[size]}"
        else:
            path = untrained_asset(material_def, size, args.resolution, args.seed + k, tmp)
            sources[size] = "untrained asset (random weights; speed does not depend on training)"
        neural[size] = nm.NeuralMaterial.from_asset(device, path, mlp=args.mlp)
    mlp_path = neural["2x32"].mlp
    print(f"material: {reference.name} ({len(reference.layout.layer_types)} layers, K = {reference.width}, "
          f"{args.resolution}^2); neural MLP path: {mlp_path}")
    for size in SIZES:
        print(f"  neural {size}: {sources[size]}")

    rng = np.random.default_rng(args.seed)
    levels = neural["2x32"].num_levels
    q = np.zeros((n, QUERY_STRIDE), np.float32)
    q[:, 0:2] = rng.random((n, 2))
    q[:, 2] = rng.uniform(0.0, levels - 1, n)
    q[:, 3:6], q[:, 6:9] = upper_hemisphere(rng, n), upper_hemisphere(rng, n)

    runners: dict[str, Runner] = {}
    ids = device.create_buffer(element_count=4, struct_size=4, usage=spy.BufferUsage.shader_resource)
    ref_kernel = compute_kernel(device, REFERENCE_MODULE, "referenceShadeKernel")
    dummy = nm.NeuralMaterialSet(device, [neural["2x16"]])  # the unused neural bindings of the reference kernel
    runners["reference"] = Runner(device, ref_kernel, {
        **dummy.bindings(ids, ids), "referenceMaterials": reference.set.uniform(), "perQueryMaterial": 0}, q)
    for size in SIZES:
        mset = neural[size].set
        runners[f"neural {size}"] = Runner(device, mset.kernel("shade"), mset.bindings(ids, ids), q)
    for r in runners.values():
        r.run()
    setup_s = time.perf_counter() - t0
    compile_s = COMPILE_STATS.seconds - compile_start

    times = measure(runners, args.repeats)
    ref_wall, ref_cpu = times["reference"]
    rows = []
    print(f"\n{'material shading':16s} {'Mqueries/s':>10s} {'ns/query':>9s} {'vs reference':>12s} "
          f"{'CPU ns/query':>12s} {'vs reference':>12s}")
    for name, (wall, cpu) in times.items():
        rows.append({"kind": name, "seconds": wall, "queries_per_s": n / wall, "ns_per_query": 1e9 * wall / n,
                     "speedup_vs_reference": ref_wall / wall, "cpu_seconds": cpu, "cpu_ns_per_query": 1e9 * cpu / n,
                     "cpu_speedup_vs_reference": ref_cpu / cpu if cpu > 0 else None,
                     "checksum": runners[name].checksum()})
        cpu_ratio = f"{ref_cpu / cpu:11.2f}x" if cpu > 0 else f"{'-':>12s}"
        print(f"{name:16s} {n / wall / 1e6:10.3f} {1e9 * wall / n:9.1f} {ref_wall / wall:11.2f}x "
              f"{1e9 * cpu / n:12.1f} {cpu_ratio}")
    print("(wall: median seconds per dispatch; CPU: this process's CPU seconds per dispatch, i.e. the software "
          "driver's threads, less sensitive to other load on a shared machine; 0 on a GPU)")
    print(f"(setup incl. compilation {setup_s:.1f} s, of which Slang compilation and pipeline creation "
          f"{compile_s:.1f} s)")

    breakdown = {}
    if args.breakdown:
        stage_names = ("instantiate", "instantiate + eval", "instantiate + sampler decode",
                       "instantiate + sample", "instantiate + eval + sample")
        print("\nbreakdown of a neural shading query (each row a kernel doing that much; CPU ns/query on a "
              "software device, else wall)")
        print(f"{'stage':30s}" + "".join(f"{size:>10s}" for size in SIZES))
        rs = {(size, k): Runner(device, neural[size].set.kernel(f"stage{k}"), neural[size].set.bindings(ids, ids), q)
              for size in SIZES for k in range(len(stage_names))}
        t = measure(rs, args.repeats)
        per_size = {size: {stage_names[k]: 1e9 * (t[size, k][1] if software else t[size, k][0]) / n
                           for k in range(len(stage_names))} for size in SIZES}
        for name in stage_names:
            print(f"{name:30s}" + "".join(f"{per_size[size][name]:10.1f}" for size in SIZES))
        macs = {size: macs_per_query(neural[size].asset) for size in SIZES}
        print(f"{'MLP multiply-adds per query':30s}" + "".join(f"{macs[size]:10d}" for size in SIZES))
        breakdown = {"ns_per_query": per_size, "mlp_macs_per_query": macs,
                     "time_basis": "cpu" if software else "wall"}

    # --- scalability -----------------------------------------------------------------------------
    counts = [int(c) for c in args.scalability.split(",") if c.strip()]
    scal = []
    if counts:
        print("\nscalability: N distinct neural 2x32 materials (untrained, distinct weights) in one dispatch")
        print(f"{'N':>3s} {'compile s':>9s} {'coherent Mq/s':>14s} {'rel. to N=1':>11s} "
              f"{'random Mq/s':>12s} {'rel. to N=1':>11s}")
        pool = [neural["2x32"]]
        base = None
        for count in counts:
            while len(pool) < count:
                path = untrained_asset(material_def, "2x32", args.resolution, args.seed + 100 + len(pool), tmp)
                pool.append(nm.NeuralMaterial.from_asset(device, path, mlp=args.mlp))
            c0 = COMPILE_STATS.seconds
            mset = nm.NeuralMaterialSet(device, pool[:count], mlp=mlp_path)
            kernel = mset.kernel("shade")
            compile_n = COMPILE_STATS.seconds - c0
            # coherent: runs of 256 consecutive queries share a material (screen-space coherence);
            # random: every query picks its own (the worst case for SIMD lanes and warps)
            coherent = ((np.arange(n) // 256) % count).astype(np.uint32)
            random_ids = rng.integers(0, count, n).astype(np.uint32)
            rs = {}
            for label, id_array in (("coherent", coherent), ("random", random_ids)):
                id_buf = device.create_buffer(data=id_array, struct_size=4, usage=spy.BufferUsage.shader_resource)
                rs[label] = Runner(device, kernel, mset.bindings(ids, ids, 0, id_buf), q)
            t = measure(rs, args.repeats)
            entry = {"materials": count, "compile_seconds": compile_n,
                     "coherent_queries_per_s": n / t["coherent"][0], "random_queries_per_s": n / t["random"][0],
                     "coherent_cpu_ns_per_query": 1e9 * t["coherent"][1] / n,
                     "random_cpu_ns_per_query": 1e9 * t["random"][1] / n}
            base = base or entry
            entry["coherent_relative"] = entry["coherent_queries_per_s"] / base["coherent_queries_per_s"]
            entry["random_relative"] = entry["random_queries_per_s"] / base["random_queries_per_s"]
            scal.append(entry)
            print(f"{count:3d} {compile_n:9.1f} {entry['coherent_queries_per_s'] / 1e6:14.3f} "
                  f"{entry['coherent_relative']:11.2f} {entry['random_queries_per_s'] / 1e6:12.3f} "
                  f"{entry['random_relative']:11.2f}")

    result = {
        "device": report.adapter, "device_kind": report.kind, "queries": n, "repeats": args.repeats,
        "material": reference.name, "resolution": args.resolution, "mlp_path": mlp_path,
        "neural_assets": sources, "compile_seconds": compile_s,
        "shading": rows,
        "ratios": {r["kind"]: r["speedup_vs_reference"] for r in rows if r["kind"] != "reference"},
        "cpu_ratios": {r["kind"]: r["cpu_speedup_vs_reference"] for r in rows if r["kind"] != "reference"},
        "breakdown": breakdown,
        "scalability": scal,
    }
    shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(result, indent=1)
    print("\nJSON:\n" + text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
