"""Regenerates the pre-baked neural assets of the bundled materials (assets/materials/*.toml) into
assets/neural/<name>.neumat/ with `neumat bake`'s default settings (the network of
BUNDLED_NETWORKS where one is named, the energy calibration for BUNDLED_CALIBRATED), and writes the results table
docs/bake-results.md (network, latents, bake time, held-out skill and error, flat-patch FLIP per
configuration, the recorded render mean FLIP, asset size).

    python tools/bake_all.py                       # every bundled material, as bundled (BUNDLED_NETWORKS)
    python tools/bake_all.py car_paint woven_fabric --network 2x32
    python tools/bake_all.py --table-only          # rewrite docs/bake-results.md from the assets
    python tools/bake_all.py --cluster auto        # every bake a Ray task on the cluster (docs/cluster.md)

The bakes go through `neumat bake`'s batch path (training/batch.py): one after another in this
process, or in parallel as Ray tasks with --cluster; a material that fails does so alone, and the
exit code is the batch's (0 all baked, 1 one failed, 130 interrupted). The committed assets keep
their bake report's PNGs, report.json and report.md but not its EXR images (linear copies of the
PNGs' panels, ~0.8 MB per material), to keep the repository small. Run it under `nice` on a
shared machine.
"""

import argparse
import json
import os
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neumat.renderer.core.errors import NeumatError  # noqa: E402
from neumat.renderer.core.paths import ASSET_DIR, REPO_ROOT  # noqa: E402

NEURAL_DIR = ASSET_DIR / "neural"
RESULTS = REPO_ROOT / "docs" / "bake-results.md"
FLIP_TARGET = 0.08
# Each bundled material's network as bundled (the rest take the bake's default, `auto`, which gives
# brushed_metal and woven_fabric 2x32). The analytic lobe with its energy term rendered car_paint
# (0.149 -> 0.0890) and patinated_brass (0.0707 -> 0.0551) better; `auto` would give it to
# glazed_ceramic and worn_plastic too, where it rendered the same within the noise (0.0426 against
# 0.0397, 0.0448 against 0.0449), so their assets stay as baked (docs/baking.md, 'The default network').
BUNDLED_NETWORKS = {"car_paint": "2x32+lobe", "patinated_brass": "2x32+lobe", "glazed_ceramic": "2x32",
                    "worn_plastic": "2x32"}
# Bundled materials baked with the energy calibration (`--calibrate`, off by default): it rendered
# patinated_brass (0.0617 -> 0.0569 at 512 spp against the same references) and worn_plastic
# (0.0462 -> 0.0449) better and brushed_metal worse (0.035 -> 0.048), so it is a per-material choice
# (docs/baking.md, 'Latent resolution and energy calibration').
BUNDLED_CALIBRATED = {"patinated_brass", "worn_plastic"}


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bake_materials(names: list[str], args) -> int:
    """Bakes the named bundled materials into NEURAL_DIR (each with --network, else its entry in
    BUNDLED_NETWORKS, else the bake's default); returns the batches' exit code."""
    from neumat.training.bake import BakeSettings
    from neumat.training.batch import DONE, BatchOptions, exit_code, run_batch, summary_table

    groups: dict[tuple[str | None, bool], list[str]] = {}
    for name in names:
        groups.setdefault((args.network or BUNDLED_NETWORKS.get(name), name in BUNDLED_CALIBRATED), []).append(name)
    outcomes = []
    for (network, calibrate), group in groups.items():
        settings = BakeSettings(iterations=args.iterations, seed=args.seed, calibrate=calibrate)
        if network:
            settings.evaluator = network
        options = BatchOptions(settings=settings, device=args.device, progress=not args.quiet)
        outcomes += run_batch([ASSET_DIR / "materials" / f"{name}.toml" for name in group], NEURAL_DIR, options,
                              cluster=args.cluster, cpus_per_bake=args.cpus_per_bake,
                              gpus_per_bake=args.gpus_per_bake)
    for outcome in outcomes:
        if outcome.state == DONE:
            for exr in (outcome.asset / "report").glob("*.exr"):
                exr.unlink()
    print(summary_table(outcomes), flush=True)
    return exit_code(outcomes)


def load_row(asset: Path) -> dict | None:
    manifest = asset / "manifest.json"
    if not manifest.is_file():
        return None
    man = json.loads(manifest.read_text())
    report_file = asset / "report" / "report.json"
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    arch = man["architecture"]
    t = man.get("timings", {})
    tr = man.get("training", {})
    m = man.get("metrics", {})
    lobe = arch.get("lobe", {}).get("enabled", False)
    calibrated = bool(tr.get("calibration"))
    return {"name": man["name"], "network": arch["evaluator"]["size"] + ("+lobe" if lobe else "")
            + (", calibrated" if calibrated else ""),
            "resolution": arch["resolution"], "iterations": tr.get("iterations_run"),
            "batch": tr.get("batch_size"), "total_s": t.get("total_s"), "training_s": t.get("training_s"),
            "heldout": m.get("heldout_rel_l1"), "heldout0": m.get("heldout_level0_rel_l1"),
            "skill": m.get("heldout_skill"), "skill_ceiling": m.get("heldout_skill_reference"),
            "flip": m.get("flip", {}), "render_flip": report.get("render_mean_flip"),
            "runtime_bytes": man.get("sizes", {}).get("runtime_bytes"), "disk_bytes": dir_bytes(asset)}


def mib(n: int | None) -> str:
    return "-" if n is None else f"{n / (1 << 20):.2f} MiB"


def _num(v: float | None, digits: int = 4, extra: float | None = None) -> str:
    if v is None:
        return "-"
    return f"{v:.{digits}f}" + ("" if extra is None else f" ({extra:.{digits}f})")


def write_table(names: list[str]) -> str:
    """docs/bake-results.md from the assets' manifests and reports, every column (none by hand)."""
    rows = [r for r in (load_row(NEURAL_DIR / f"{n}.neumat") for n in names) if r is not None]
    configs = ["front", "specular", "grazing"]
    lines = [
        "## Pre-baked neural materials: bake results", "",
        "Written by `tools/bake_all.py` from the assets in `assets/neural/` (each asset's `manifest.json` "
        "and `report/report.json`; the report's images are in `report/`), on the development machine: 2 CPU "
        "cores, torch on 1 thread, the reference on Mesa lavapipe. The network and latent resolution of "
        "each asset are in its row; `neumat bake`'s defaults are in [baking.md](baking.md).", "",
        "- **bake time**: the whole `neumat bake` (setup, training, bake report, export); training alone in "
        "brackets.",
        "- **held-out skill**: 1 - the held-out log-L1 error over that of the best constant prediction over "
        "65536 fresh queries of training's distribution (1 is perfect, 0 or less no better than a constant; "
        "a second reference estimate scores the noise ceiling, in brackets).",
        "- **held-out rel. L1**: mean of |y - t| / (|t| + 0.01) over the same queries (all levels; level 0 in "
        "brackets), against 32-walk reference values.",
        "- **FLIP**: HDR-FLIP of the flat patch (latent level 0, one pixel per texel, directional light) "
        "against a converged reference, per configuration (view / light polar angles on opposite sides: "
        "front 0 / 30, specular 45 / 45 on the mirror direction, grazing 80 / 60). Target: <= "
        f"{FLIP_TARGET}; values above it are in bold.",
        "- **render mean FLIP**: `neumat compare --material ... --record`'s mean FLIP over its five rendered "
        "views ([fidelity.md](fidelity.md)), from the report's `render_mean_flip`; `-` where it was not "
        "recorded.",
        "- **size**: the runtime data (fp16 latents and weights) and the asset on disk (fp32 master copies, "
        "fp16 copies, manifest, report PNGs and JSON).", "",
        "| material | network | latents | iterations | bake time | held-out skill | held-out rel. L1 "
        "| FLIP front | FLIP specular | FLIP grazing | render mean FLIP | runtime size | on disk |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        flips = []
        for c in configs:
            v = r["flip"].get(c)
            flips.append("-" if v is None else (f"**{v:.4f}**" if v > FLIP_TARGET else f"{v:.4f}"))
        total = "-" if r["total_s"] is None else f"{r['total_s'] / 60:.1f} min ({r['training_s'] / 60:.1f})"
        lines.append(f"| {r['name']} | {r['network']} | {r['resolution']} x {r['resolution']} | "
                     f"{r['iterations']} x {r['batch']} | {total} | {_num(r['skill'], 3, r['skill_ceiling'])} | "
                     f"{_num(r['heldout'], 4, r['heldout0'])} | " + " | ".join(flips) +
                     f" | {_num(r['render_flip'])} | {mib(r['runtime_bytes'])} | {mib(r['disk_bytes'])} |")
    total_disk = sum(r["disk_bytes"] for r in rows)
    recorded = [r["render_flip"] for r in rows if r["render_flip"] is not None]
    lines += [""]
    if recorded:
        lines.append(f"Render mean FLIP over the {len(recorded)} assets that recorded it: "
                     f"{sum(recorded) / len(recorded):.4f} (the paper's 2x32: 0.055).")
    lines.append(f"All {len(rows)} assets: {mib(total_disk)} on disk. Table written {date.today().isoformat()}.")
    text = "\n".join(lines) + "\n"
    tmp = RESULTS.with_name(f".{RESULTS.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, RESULTS)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("materials", nargs="*", help="material names (default: every bundled material)")
    parser.add_argument("--network", default=None, help="default: BUNDLED_NETWORKS, else neumat bake's")
    parser.add_argument("--iterations", type=int, default=None, help="default: neumat bake's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--table-only", action="store_true", help="only rewrite docs/bake-results.md")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("--cluster", default=None, help="local, auto or a Ray address (as neumat bake's)")
    parser.add_argument("--cpus-per-bake", type=float, default=None)
    parser.add_argument("--gpus-per-bake", type=float, default=None)
    args = parser.parse_args(argv)

    every = sorted(p.stem for p in (ASSET_DIR / "materials").glob("*.toml"))
    names = args.materials or every
    unknown = sorted(set(names) - set(every))
    if unknown:
        print(f"bake_all: unknown materials {unknown}; bundled: {every}", file=sys.stderr)
        return 2
    NEURAL_DIR.mkdir(parents=True, exist_ok=True)
    code = 0
    if not args.table_only:
        try:
            code = bake_materials(names, args)
        except NeumatError as e:  # bad options, or no Ray for --cluster
            print(f"bake_all: {e}", file=sys.stderr)
            return 2
    print(write_table(every))
    return code


if __name__ == "__main__":
    sys.exit(main())
