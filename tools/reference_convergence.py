"""How fast the reference layered BSDF's eval converges, per bundled material and flat-patch
configuration (training/report.py FLAT_PATCH_CONFIGS): the noise between two independent half
estimates of a flat patch at several walk counts, and the exponent of a power law fitted to it.

Two measures of the noise between halves a and b (each averaging walks / 2 walks per texel):
- FLIP(a, b), as the bake report and `neumat compare` see it. FLIP is not linear in the noise: on
  Gaussian noise of relative size s it grows as about s^0.8 at small s (its colour term has an
  exponent of 0.7 and a perceptual threshold), so even a finite-variance estimator shows a FLIP
  exponent below 0.5. Each row also prints the exponent that Gaussian noise with the measured
  relative RMS would give on the same patch: the FLIP exponent of an ideal estimator with that noise;
- the relative RMS difference sqrt(mean((a - b)^2) / mean(((a + b) / 2)^2)), which falls as
  walks^-0.5 exactly when the per-walk variance is finite; a heavy tail shows as a smaller exponent
  that wanders between runs.

`--per-term` also prints where the variance of one walk comes from: for each of eval()'s terms
(layered.slang TERM_*: the top interface's reflection, last turns by connection, last turns by
following the vertex's sample) its share of the mean and its variance per walk relative to the
squared mean of the whole, and the share of that variance carried by the largest 0.1 % of walks
(near 1: a heavy tail).

    python tools/reference_convergence.py [--json OUT] [--texels 128] [--walks 64 256 1024]
                                          [--materials car_paint ...] [--per-term] [--plain] [--device lavapipe]
"""

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neumat.renderer.core.device import create_device  # noqa: E402
from neumat.renderer.images.metrics import flip_error  # noqa: E402
from neumat.renderer.materials import reference as ref  # noqa: E402
from neumat.renderer.core.paths import ASSET_DIR  # noqa: E402
from neumat.training.report import FLAT_PATCH_CONFIGS, LIGHT_IRRADIANCE, patch_uv  # noqa: E402

TERMS = {"top": ref.TERM_TOP, "connect": ref.TERM_CONNECT, "follow": ref.TERM_FOLLOW}
TAIL_FRACTION = 1e-3


def patch(material: ref.ReferenceMaterial, config, texels: int, walks: int, seed: int,
          terms: int = ref.TERM_ALL, plain: bool = False) -> np.ndarray:
    """A flat-patch estimate averaging `walks` walks per texel, linear [texels, texels, 3]."""
    uv = patch_uv(material.resolution[1], texels)
    n = len(uv)
    walk = replace(material.walk, n_walks=walks, terms=terms, plain=plain)
    f = material.evaluate(uv, np.tile(config.wi, (n, 1)), np.tile(config.wo, (n, 1)), 0.0, seed=seed, walk=walk)
    return (f * np.float32(LIGHT_IRRADIANCE)).reshape(texels, texels, 3)


def relative_rms(a: np.ndarray, b: np.ndarray) -> float:
    mean = 0.5 * (a + b)
    return float(np.sqrt(np.mean((a - b) ** 2) / max(np.mean(mean ** 2), 1e-30)))


def exponent(walks: list[int], values: list[float]) -> float:
    """-slope of log(value) against log(walks), least squares; nan from a single walk count."""
    if len(set(walks)) < 2:
        return math.nan
    x, y = np.log(walks), np.log(np.maximum(values, 1e-12))
    return float(-np.polyfit(x, y, 1)[0])


def gaussian_flip(image: np.ndarray, rel_rms: float, seed: int) -> float:
    """FLIP between two copies of `image` with independent Gaussian noise whose relative RMS difference
    is rel_rms: what an estimator with finite variance and the same noise level would show."""
    rng = np.random.default_rng(seed)
    sigma = rel_rms / math.sqrt(2.0)
    a, b = (image * (1 + sigma * rng.standard_normal(image.shape)).astype(np.float32) for _ in range(2))
    return flip_error(np.maximum(a, 0), np.maximum(b, 0))[1]


def convergence(material, config, texels: int, walk_counts: list[int], seed: int, plain: bool) -> dict:
    rows, mean = [], None
    for k, walks in enumerate(walk_counts):
        half = max(walks // 2, 1)
        a = patch(material, config, texels, half, seed + 2 * k, plain=plain)
        b = patch(material, config, texels, half, seed + 2 * k + 1, plain=plain)
        rows.append({"walks": 2 * half, "flip": flip_error(a, b)[1], "rel_rms": relative_rms(a, b)})
        mean = 0.5 * (a + b)
    for row in rows:  # the least noisy estimate stands in for the converged patch
        row["gaussian_flip"] = gaussian_flip(mean, row["rel_rms"], seed)
    walks = [r["walks"] for r in rows]
    return {"rows": rows, "flip_exponent": exponent(walks, [r["flip"] for r in rows]),
            "rms_exponent": exponent(walks, [r["rel_rms"] for r in rows]),
            "gaussian_flip_exponent": exponent(walks, [r["gaussian_flip"] for r in rows])}


def per_term(material, config, texels: int, repeats: int, seed: int, plain: bool) -> dict:
    """Each term's mean share and per-walk variance (relative to the whole's squared mean) from
    `repeats` single-walk estimates per texel."""
    def draws(terms: int) -> np.ndarray:  # [repeats, texels^2, 3]
        return np.stack([patch(material, config, texels, 1, seed + 7919 * r + terms, terms, plain).reshape(-1, 3)
                         for r in range(repeats)])

    whole = draws(ref.TERM_ALL)
    scale = float(np.mean(whole.mean(axis=0) ** 2))
    mean = float(np.mean(whole))
    out = {}
    for name, bit in [("all", ref.TERM_ALL)] + list(TERMS.items()):
        x = whole if bit == ref.TERM_ALL else draws(bit)
        dev2 = ((x - x.mean(axis=0)) ** 2).ravel()
        top = np.sort(dev2)[-max(int(len(dev2) * TAIL_FRACTION), 1):]
        out[name] = {"mean_share": float(np.mean(x)) / mean if mean > 0 else 0.0,
                     "rel_variance": float(np.mean(dev2)) / max(scale, 1e-30),
                     "tail_share": float(top.sum() / max(dev2.sum(), 1e-30))}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the results here")
    parser.add_argument("--texels", type=int, default=128, help="patch side in texels (top-left block of level 0)")
    parser.add_argument("--walks", type=int, nargs="+", default=[64, 256, 1024], help="walks per estimate, in all")
    parser.add_argument("--materials", nargs="+", default=None, help="bundled material names (default: all)")
    parser.add_argument("--per-term", action="store_true", help="also measure each eval() term's variance")
    parser.add_argument("--plain", action="store_true",
                        help="measure the plain estimator (presence drawn per walk, no stratification) "
                             "instead of the default")
    parser.add_argument("--repeats", type=int, default=64, help="single-walk draws per texel for --per-term")
    parser.add_argument("--device", default=None, help="auto, nvidia, gpu, lavapipe, an index or part of a name")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    device = create_device(args.device)
    files = sorted((ASSET_DIR / "materials").glob("*.toml"))
    if args.materials:
        files = [f for f in files if f.stem in args.materials]
    results = {}
    for path in files:
        material = ref.ReferenceMaterial.from_file(device, path)
        results[path.stem] = {}
        for config in FLAT_PATCH_CONFIGS:
            start = time.perf_counter()
            row = convergence(material, config, args.texels, args.walks, args.seed, args.plain)
            if args.per_term:
                row["terms"] = per_term(material, config, min(args.texels, 64), args.repeats, args.seed, args.plain)
            results[path.stem][config.name] = row
            noise = "  ".join(f"{r['walks']:5d}: {r['flip']:.4f} {r['rel_rms']:.4f}" for r in row["rows"])
            print(f"{path.stem:16s} {config.name:9s} walks: FLIP rel.RMS  {noise}   exponent FLIP "
                  f"{row['flip_exponent']:.2f} (Gaussian noise {row['gaussian_flip_exponent']:.2f}) "
                  f"RMS {row['rms_exponent']:.2f}  ({time.perf_counter() - start:.0f} s)", flush=True)
            for name, t in row.get("terms", {}).items():
                print(f"{'':27s}{name:8s} mean share {t['mean_share']:6.3f}  rel. variance/walk "
                      f"{t['rel_variance']:9.4f}  top 0.1 % of walks carry {100 * t['tail_share']:5.1f} %",
                      flush=True)
    worst = min(row["flip_exponent"] for m in results.values() for row in m.values()) if results else math.nan
    print(f"smallest FLIP exponent: {worst:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"texels": args.texels, "walks": args.walks, "plain": args.plain,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
