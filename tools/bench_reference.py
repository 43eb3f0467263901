"""Throughput of the reference layered BSDF's batched queries (renderer/materials/reference.py):
evaluations/s, samples/s and pdfs/s per bundled material (assets/materials/*.toml), or on a
synthetic five-layer stack when none are bundled. Compile time is reported separately.

    python tools/bench_reference.py [--queries 1000000] [--n-walks 1] [--resolution 256] [--device lavapipe]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neumat.renderer.core.device import create_device  # noqa: E402
from neumat.renderer.materials import reference as ref  # noqa: E402
from neumat.renderer.materials.layout import StackLayout  # noqa: E402
from neumat.renderer.core.paths import ASSET_DIR  # noqa: E402


def synthetic_material(device) -> ref.ReferenceMaterial:
    """Conductor, rough coat, flakes, clear coat, sheen; flakes, coat and sheen partly present."""
    layout = StackLayout(("conductor", "dielectric", "flakes", "dielectric", "sheen"))
    values = {(0, "f0"): (0.9, 0.9, 0.9), (0, "edge_tint"): (1, 1, 1), (0, "alpha_u"): 0.3, (0, "alpha_v"): 0.3,
              (1, "ior"): 1.3, (1, "alpha"): 0.2, (2, "weight"): 0.3, (2, "f0"): (0.9, 0.9, 0.9), (2, "alpha"): 0.1,
              (3, "weight"): 0.7, (3, "ior"): 1.5, (3, "alpha"): 0.05, (4, "weight"): 0.5,
              (4, "color"): (0.5, 0.5, 0.5), (4, "alpha"): 0.5}
    v = np.zeros(layout.width, np.float32)
    for i in range(len(layout.layer_types)):
        v[layout.slot(i, "weight")] = 1.0
        v[layout.slot(i, "normal")] = (0, 0, 1)
    for (layer, param), value in values.items():
        v[layout.slot(layer, param)] = value
    return ref.ReferenceMaterial(device, layout, [np.tile(v, (4, 4, 1))], name="synthetic_five_layers")


def upper_hemisphere(rng, n: int) -> np.ndarray:
    v = rng.normal(size=(n, 3))
    v[:, 2] = np.abs(v[:, 2])
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


REPEATS = 3  # timed pairs (default, plain eval) per material


def rate(fn, n: int) -> float:
    start = time.perf_counter()
    fn()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=1_000_000)
    parser.add_argument("--n-walks", type=int, default=1, help="walks per evaluation")
    parser.add_argument("--resolution", type=int, default=256, help="level-0 resolution of bundled materials")
    parser.add_argument("--device", default=None, help="auto, nvidia, gpu, lavapipe, an index or part of a name")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    device = create_device(args.device)
    print(f"device: {device.info.adapter_name}; {args.queries} queries, {args.n_walks} walk(s) per evaluation")
    paths = sorted((ASSET_DIR / "materials").glob("*.toml"))
    materials = ([ref.ReferenceMaterial.from_file(device, p, resolution=args.resolution) for p in paths]
                 or [synthetic_material(device)])
    rng = np.random.default_rng(args.seed)
    n = args.queries
    uv = rng.random((n, 2)).astype(np.float32)
    wi, wo = upper_hemisphere(rng, n), upper_hemisphere(rng, n)

    warm = slice(0, 64)  # compiles the kernels outside the timed runs
    start = time.perf_counter()
    materials[0].evaluate(uv[warm], wi[warm], wo[warm], 0.0)
    materials[0].sample(uv[warm], wi[warm], 0.0)
    materials[0].pdf(uv[warm], wi[warm], wo[warm], 0.0)
    print(f"first dispatch of each kernel (Slang compilation and pipeline creation, cached on disk): "
          f"{time.perf_counter() - start:.1f} s\n")

    # "plain eval": the plain estimator (presence drawn per walk, no stratification), timed in the
    # same run, alternating with the default one, so that the cost can be read as a ratio on a noisy
    # machine: the median of REPEATS ratios.
    plain = ref.WalkSettings(n_walks=args.n_walks, plain=True)
    print(f"{'material':24s} {'layers':>6s} {'K':>3s} {'eval/s':>12s} {'plain eval/s':>13s} {'ratio':>6s} "
          f"{'sample/s':>12s} {'pdf/s':>12s}")
    for material in materials:
        lod = rng.uniform(0, len(material.pyramid), n).astype(np.float32)
        pairs = [(rate(lambda: material.evaluate(uv, wi, wo, lod, n_walks=args.n_walks, seed=args.seed), n),
                  rate(lambda: material.evaluate(uv, wi, wo, lod, seed=args.seed, walk=plain), n))
                 for _ in range(REPEATS)]
        e, e0 = sorted(pairs, key=lambda p: p[0] / p[1])[REPEATS // 2]
        s = rate(lambda: material.sample(uv, wi, lod, seed=args.seed), n)
        p = rate(lambda: material.pdf(uv, wi, wo, lod), n)
        print(f"{material.name:24s} {len(material.layout.layer_types):6d} {material.width:3d} "
              f"{e:12,.0f} {e0:13,.0f} {e / e0:6.2f} {s:12,.0f} {p:12,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
