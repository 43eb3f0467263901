"""Markdown tables of `neumat compare --material` results, for docs/fidelity.md.

    python tools/fidelity_table.py out/fidelity/*/metrics.json

Prints one table of FLIP per view and the mean, and one of each side's noise (the FLIP between
its two halves), samples per pixel and the FLIP that noise alone gives (mean over the views), one
row per material."""

import argparse
import json
from pathlib import Path


def _row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def _floor(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"  # "-": measured against a reference cached without halves


def tables(results: list[dict]) -> str:
    views = [v["name"] for v in results[0]["views"]]
    lines = [_row(["material", *views, "**mean FLIP**"]), _row(["---"] * (len(views) + 2))]
    for r in results:
        flips = {v["name"]: f"{v['flip']:.4f}" for v in r["views"]}
        lines.append(_row([r["material"], *(flips.get(n, "-") for n in views), f"**{r['mean_flip']:.4f}**"]))
    lines += ["", _row(["material", "reference halves FLIP (mean / max)", "reference spp (min-max)",
                        "neural halves FLIP (mean / max)", "neural spp (min-max)", "noise alone (mean FLIP)"]),
              _row(["---"] * 6)]
    for r in results:
        ref = [v["reference"]["spp"] for v in r["views"]]
        neural = [v["neural"]["spp"] for v in r["views"]]
        lines.append(_row([r["material"], f"{r['reference_noise_flip_mean']:.4f} / {r['reference_noise_flip']:.4f}",
                           f"{min(ref)}-{max(ref)}",
                           f"{r['neural_noise_flip_mean']:.4f} / {r['neural_noise_flip']:.4f}",
                           f"{min(neural)}-{max(neural)}", _floor(r.get("noise_floor_flip_mean"))]))
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("metrics", nargs="+", type=Path, help="metrics.json files of neumat compare --material")
    args = p.parse_args()
    print(tables([json.loads(path.read_text()) for path in args.metrics]))


if __name__ == "__main__":
    main()
