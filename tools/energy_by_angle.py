"""Where a neural asset gains or loses energy against its reference, by angle.

A rendered view that is too dark or too bright over the whole image (`neumat compare --material`)
says that energy is missing, not where in the BRDF it went. This prints, for one latent level, the
ratio sum(reference) / sum(neural) of f * cos over queries grouped by the half vector's angle from
the normal (rows: the mirror direction at the top, where clear coats and glazes keep their narrow
peaks) and by the light's elevation (columns: grazing at the right), with the reference's mean in
each cell. 1.00 is right; 2.00 means the neural material returns half the reference's energy there.
The reference averages `--walks` walks per query (64: its own noise is then far below the ratios
that matter), so the ratio is a mean-to-mean comparison, unlike the training's log-space loss.

    python tools/energy_by_angle.py assets/neural/car_paint.neumat [--source FILE.toml]
        [--queries 65536] [--level 0] [--walks 64] [--seed 5]

Measured with it (docs/baking.md, 'Lobe energy'), on 512-latent bakes before the lobe's energy
term: car_paint's clear-coat peak (half vector within 2 degrees of the normal) 1.5x too dark facing
the light and 5.3x at grazing; with 4-walk targets glazed_ceramic's glaze peak 4.4x at grazing and
brushed_metal within 1-3 % everywhere but the grazing peak.
"""

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neumat.renderer.core.errors import NeumatError  # noqa: E402

HALF_EDGES_DEG = (0, 2, 5, 10, 20, 40, 90)  # rows: the half vector's angle from the normal
LIGHT_EDGES_DEG = (0, 30, 60, 75, 90)  # columns: the light's angle from the normal
MIN_CELL = 50  # queries a cell needs before its ratio is shown


def queries(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """(theta_h [m], wi [m, 3], wo [m, 3]): half vectors stratified over the rows (uniform angle
    within each), difference vectors cosine-distributed around them, pairs below the horizon dropped."""
    from neumat.training.report import directions_from_angles

    edges = np.radians(HALF_EDGES_DEG)
    rows = len(edges) - 1
    th = np.concatenate([rng.uniform(edges[i], edges[i + 1], n // rows) for i in range(rows)])
    m = len(th)
    ph, pd = rng.random(m) * 2 * np.pi, rng.random(m) * 2 * np.pi
    wi, wo = directions_from_angles(th, ph, np.arccos(1 - rng.random(m)), pd)
    ok = (wi[:, 2] > 1e-3) & (wo[:, 2] > 1e-3)
    return th[ok], wi[ok].astype(np.float32), wo[ok].astype(np.float32)


def energy_table(reference_values: np.ndarray, neural_values: np.ndarray, theta_h: np.ndarray,
                 theta_light: np.ndarray) -> list[list[tuple[np.ndarray, float] | None]]:
    """Per (row, column) cell: (sum(reference) / sum(neural) per channel, reference mean), or None
    for a cell with fewer than MIN_CELL queries."""
    rows = np.digitize(theta_h, np.radians(HALF_EDGES_DEG[1:-1]))
    cols = np.digitize(theta_light, np.radians(LIGHT_EDGES_DEG[1:-1]))
    table = []
    for i in range(len(HALF_EDGES_DEG) - 1):
        row = []
        for j in range(len(LIGHT_EDGES_DEG) - 1):
            s = (rows == i) & (cols == j)
            if s.sum() < MIN_CELL:
                row.append(None)
                continue
            ratio = reference_values[s].sum(0) / np.maximum(neural_values[s].sum(0), 1e-12)
            row.append((ratio, float(reference_values[s].mean())))
        table.append(row)
    return table


def format_table(table) -> str:
    head = ["half vector \\ light"] + [f"{a}-{b} deg" for a, b in zip(LIGHT_EDGES_DEG, LIGHT_EDGES_DEG[1:])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for (a, b), row in zip(zip(HALF_EDGES_DEG, HALF_EDGES_DEG[1:]), table):
        cells = ["-" if c is None else "/".join(f"{v:.2f}" for v in c[0]) + f" ({c[1]:.3g})" for c in row]
        lines.append(f"| {a}-{b} deg | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("asset", help="a baked .neumat asset")
    p.add_argument("--source", help="the material it was baked from (default: the manifest's source.file)")
    p.add_argument("--queries", type=int, default=1 << 16)
    p.add_argument("--level", type=int, default=0, help="latent level (0: the finest)")
    p.add_argument("--walks", type=int, default=64, help="reference walks per query")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--device", help="Vulkan device for the reference (default: the first)")
    args = p.parse_args(argv)
    try:
        from neumat.renderer.compare.fidelity import check_inputs
        from neumat.renderer.core.device import create_device
        from neumat.renderer.materials.reference import ReferenceMaterial
        from neumat.training.export import load_model
        from neumat.training.report import neural_values

        if args.queries < 1000 or args.walks < 1:
            raise NeumatError("--queries must be >= 1000 and --walks >= 1")
        inputs = check_inputs(args.asset, args.source)
        model = load_model(args.asset)
        if not 0 <= args.level < model.latents.num_levels:
            raise NeumatError(f"--level must be 0 to {model.latents.num_levels - 1}, got {args.level}")
        print(f"{Path(args.asset).name}: {args.queries} queries at level {args.level}, reference "
              f"{args.walks} walks each ({inputs.source})", flush=True)
        reference = ReferenceMaterial.from_file(create_device(args.device), inputs.source, model.config.resolution)
        rng = np.random.default_rng(args.seed)
        theta_h, wi, wo = queries(args.queries, rng)
        uv = rng.random((len(wi), 2)).astype(np.float32)
        level = np.full(len(wi), args.level, np.float32)
        t = reference.evaluate(uv, wi, wo, level, n_walks=args.walks, seed=args.seed)
        y = neural_values(model, uv, wi, wo, level)
    except NeumatError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    table = energy_table(t, y, theta_h, np.arccos(np.clip(wo[:, 2], -1, 1)))
    print("sum(reference) / sum(neural) of f * cos, R/G/B (reference mean in brackets)")
    print(format_table(table))
    print("all queries: " + "/".join(f"{v:.3f}" for v in t.sum(0) / np.maximum(y.sum(0), 1e-12))
          + " (dominated by the brightest cells)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
