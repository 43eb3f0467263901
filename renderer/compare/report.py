"""The files `neumat compare` writes into its output folder: both images (EXR and PNG), the FLIP map,
the side-by-side figure, metrics.json and one self-contained report.html (images embedded as
data URIs, so the page can be mailed or attached to a CI run as one file)."""

import base64
import html
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neumat.renderer.core.atomic_files import atomic_output
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import write_image, write_png
from neumat.renderer.materials.query import MATERIAL_KINDS

METRICS_FORMAT_VERSION = 1


@dataclass
class ComparisonReport:
    """Everything a comparison found, ready to be written."""
    title: str
    names: tuple[str, str]  # (reference, test) labels
    reference: np.ndarray
    test: np.ndarray
    flip_magma: np.ndarray
    figure: object  # the side-by-side PIL image
    metrics: dict  # renderer.compare.comparison.metrics()
    exposure: float
    context: dict = field(default_factory=dict)  # scene, device, spp, resolution, ...
    timings: dict | None = None  # frame times (scene comparisons)
    extra_images: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. the equal-time render
    extra_metrics: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    max_flip: float | None = None

    @property
    def passed(self) -> bool:
        return self.max_flip is None or self.metrics["image"]["flip"] <= self.max_flip


def prepare_output_dir(path: str | Path) -> Path:
    """Creates the folder if needed and checks it can be written, before any rendering."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NeumatError(f"{path}: exists and is not a folder (-o names the output folder)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise NeumatError(f"{path}: cannot write the comparison there ({exc.strerror or exc})") from None
    return path


def _json_number(v):
    """JSON has no infinity: PSNR of identical images is written as null and explained in the file."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_number(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_number(x) for x in v]
    return v


def _png_data_uri(img) -> str:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}g}"
    return str(v)


def _table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def material_rows(report: ComparisonReport) -> list[list]:
    """Per material: name, share of pixels, FLIP, PSNR, relative MSE, and with timings the
    reference and neural ms/spp of a render showing only that material and their ratio."""
    total = report.metrics["image"]["pixels"]
    per_material_time = (report.timings or {}).get("materials", {})
    rows = []
    for name, m in report.metrics["materials"].items():
        t = per_material_time.get(name, {})
        rows.append([name, f"{100.0 * m['pixels'] / total:.1f} %", m["flip"], m["psnr_db"], m["relative_mse"],
                     t.get("reference_ms_per_spp"), t.get("neural_ms_per_spp"), t.get("speedup")])
    return rows


MATERIAL_HEADER = ["material", "pixels", "FLIP", "PSNR (dB)", "rel. MSE", "reference ms/spp", "neural ms/spp",
                   "reference / neural time"]


def _html(report: ComparisonReport, figure_uri: str, images: dict[str, str]) -> str:
    ref_name, test_name = report.names
    m = report.metrics["image"]
    verdict = ""
    if report.max_flip is not None:
        verdict = (f"<p class='{'pass' if report.passed else 'fail'}'>FLIP {m['flip']:.4f} "
                   f"{'&le;' if report.passed else '&gt;'} --max-flip {report.max_flip:g}: "
                   f"{'pass' if report.passed else 'FAIL'}</p>")
    context = "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in report.context.items())
    whole = [["equal samples" if report.timings else test_name, m["flip"], m["psnr_db"], m["relative_mse"]]]
    for label, em in report.extra_metrics.items():
        whole.append([label, em["image"]["flip"], em["image"]["psnr_db"], em["image"]["relative_mse"]])
    sections = [f"<h2>Whole image</h2>{_table(['image', 'FLIP', 'PSNR (dB)', 'rel. MSE'], whole)}"]
    if report.timings:
        t = report.timings
        rows = [[ref_name, t["reference"]["spp"], t["reference"]["seconds"], t["reference"]["ms_per_spp"]],
                [test_name, t["neural"]["spp"], t["neural"]["seconds"], t["neural"]["ms_per_spp"]]]
        if "equal_time" in t:
            e = t["equal_time"]
            rows.append([f"{test_name}, equal time", e["spp"], e["seconds"], e["ms_per_spp"]])
        sections.append("<h2>Frame times</h2>" + _table(["render", "spp", "seconds", "ms/spp"], rows)
                        + f"<p>Reference / neural time per sample: <b>{_fmt(t['speedup'], 3)}x</b>. "
                        "Per-material times below come from renders that shade only that material "
                        f"(every other surface black) at {t.get('material_spp', '-')} spp; "
                        f"with no material shaded at all a frame takes {_fmt(t.get('baseline_ms_per_spp'), 3)} "
                        "ms/spp (tracing, environment, lights).</p>")
    if report.metrics["materials"]:
        sections.append("<h2>Per material</h2><p>Pixels grouped by the material their primary ray hit "
                        "(material-id AOV of the reference render).</p>"
                        + _table(MATERIAL_HEADER, material_rows(report)))
    if report.warnings:
        sections.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in report.warnings)
                        + "</ul>")
    sections.append(f"<h2>Side by side</h2><p>{html.escape(ref_name)} | {html.escape(test_name)} | FLIP; "
                    f"below, the window with the highest mean FLIP, enlarged. Exposure {report.exposure:+g} "
                    f"stops, ACES.</p><img src='{figure_uri}' alt='side by side'>")
    for label, uri in images.items():
        sections.append(f"<h2>{html.escape(label)}</h2><img src='{uri}' alt='{html.escape(label)}'>")
    return _page(report.title, f"{verdict}<ul>{context}</ul>\n{''.join(sections)}")


def _page(title: str, body: str) -> str:
    """One self-contained HTML page in the reports' style."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; background: #181818; color: #e8e8e8; margin: 2em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; }}
th, td {{ border: 1px solid #555; padding: 0.3em 0.7em; text-align: right; }}
th {{ background: #2a2a2a; }} td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; image-rendering: pixelated; }}
.pass {{ color: #7fdc7f; font-weight: bold; }} .fail {{ color: #ff7070; font-weight: bold; }}
</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
<p>FLIP: NVIDIA's HDR-FLIP (flip-evaluator), 0 = identical; PSNR on the displayed images; relative
MSE = (test - reference)<sup>2</sup> / (reference<sup>2</sup> + 0.01) on linear values.</p>
</body></html>
"""


def write_report(out_dir: Path, report: ComparisonReport, stems: tuple[str, str]) -> list[Path]:
    """Writes every output file (each atomically) and returns their paths, report.html last."""
    from PIL import Image

    written: list[Path] = []
    images = {stems[0]: report.reference, stems[1]: report.test, **report.extra_images}
    uris = {}
    for stem, img in images.items():
        for ext in (".exr", ".png"):
            written.append(write_image(out_dir / f"{stem}{ext}", img, report.exposure))
        uris[stem] = _png_data_uri(Image.open(out_dir / f"{stem}.png"))
    flip_png = out_dir / "flip.png"
    flip_img = Image.fromarray(np.round(np.clip(report.flip_magma, 0, 1) * 255).astype(np.uint8), "RGB")
    write_png(flip_png, flip_img)
    written.append(flip_png)
    figure_png = out_dir / "side_by_side.png"
    write_png(figure_png, report.figure)
    written.append(figure_png)
    payload = {"format_version": METRICS_FORMAT_VERSION, "title": report.title,
               "reference": report.names[0], "test": report.names[1], "context": report.context,
               "exposure": report.exposure, **report.metrics, "extra": report.extra_metrics,
               "timings": report.timings, "warnings": report.warnings, "max_flip": report.max_flip,
               "passed": report.passed,
               "notes": "flip: mean HDR-FLIP; psnr_db: of the displayed images, null = infinite (identical); "
                        "relative_mse: (test - ref)^2 / (ref^2 + 0.01); materials: pixels grouped by the "
                        "reference render's material-id AOV"}
    written.append(_write_text(out_dir / "metrics.json", json.dumps(_json_number(payload), indent=2) + "\n"))
    page = _html(report, _png_data_uri(report.figure),
                 {"FLIP error map": _png_data_uri(flip_img),
                  **{f"{stem} ({stem}.exr)": uri for stem, uri in uris.items()}})
    written.append(_write_text(out_dir / "report.html", page))
    return written


def _write_text(path: Path, text: str) -> Path:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


FIDELITY_NOTES = (
    "flip: mean HDR-FLIP of the whole view (background included); "
    "flip_material_pixels: over the pixels showing the material; mean_flip: mean over the views; "
    "reference_noise_flip / neural_noise_flip: FLIP between two independent halves of that side's render "
    "(max over the views; _mean: mean), the image being their mean; noise_floor_flip: the FLIP that the two "
    "sides' noise alone gives, between (reference half A + neural half A) / 2 and the same of the B halves "
    "(null when the cached reference has no halves); psnr_db: of the displayed images, "
    "null = infinite; latent_lod_p5_p50_p95: the neural render's latent level over the material's pixels "
    "(below 0: level 0 magnified); stopped: why a side's rendering stopped (target, spp cap, time cap, fixed spp)")

FIDELITY_HEADER = ["view", "FLIP", "noise alone", "FLIP (material pixels)", "PSNR (dB)", "latent level (median)",
                   "reference spp", "reference halves FLIP", "reference stopped", "neural spp", "neural halves FLIP"]


def fidelity_rows(summary: dict) -> list[list]:
    """One row per view of FIDELITY_HEADER, then the mean."""
    rows = []
    for v in summary["views"]:
        ref, neural = v["reference"], v["neural"]
        lod = v["latent_lod_p5_p50_p95"]
        rows.append([v["name"], v["flip"], v.get("noise_floor_flip"), v["flip_material_pixels"], v["psnr_db"],
                     lod[1] if lod else None,
                     ref["spp"], ref["noise_flip"], ref["stopped"] + (" (cached)" if ref["cached"] else ""),
                     neural["spp"], neural["noise_flip"]])
    rows.append(["mean", summary["mean_flip"], summary.get("noise_floor_flip_mean"), None, summary["mean_psnr_db"],
                 None, None,
                 summary["reference_noise_flip_mean"], None, None, summary["neural_noise_flip_mean"]])
    return rows


def _sampling_text(rule: dict) -> str:
    if rule["rule"] == "fixed spp":
        return f"a fixed {rule['spp']} spp per view (two halves)"
    caps = [f"{rule['max_spp']} spp per view"]
    if rule.get("max_seconds"):
        caps.append(f"{rule['max_seconds'] / 60:.1f} minutes for all views ({rule['seconds_count']})")
    return f"until the FLIP between its halves is at most {rule['target_noise_flip']:g}, or {' / '.join(caps)}"


def write_fidelity_report(out_dir: Path, fidelity) -> list[Path]:
    """`neumat compare --material`'s files: per view `<view>_reference.exr`, `<view>_neural.exr` and
    `<view>.png` (reference | neural | FLIP, the worst window below), `views.png` (every view in
    one figure), metrics.json and report.html. Returns their paths, report.html last."""
    from neumat.renderer.compare.comparison import side_by_side
    from neumat.renderer.images.io import to_display
    from neumat.renderer.images.panels import enlarge, figure

    summary = fidelity.summary()
    written: list[Path] = []
    rows, figures = [], {}
    for v, rec in zip(fidelity.views, summary["views"]):
        name = v.view.name
        for side, image in (("reference", v.reference.image), ("neural", v.neural.image)):
            written.append(write_image(out_dir / f"{name}_{side}.exr", image))
        fig = side_by_side(v.reference.image, v.neural.image, v.maps, MATERIAL_KINDS,
                           f"{summary['material']}: {name}",
                           f"FLIP {rec['flip']:.4f}; reference {rec['reference']['spp']} spp, neural "
                           f"{rec['neural']['spp']} spp")
        write_png(out_dir / f"{name}.png", fig)
        written.append(out_dir / f"{name}.png")
        figures[name] = fig
        zoom = max(1, 256 // max(v.reference.image.shape[:2]))
        panels = [to_display(v.reference.image, v.maps.exposure), to_display(v.neural.image, v.maps.exposure),
                  np.round(np.clip(v.maps.flip_magma, 0, 1) * 255).astype(np.uint8)]
        captions = (f"{name}: reference", "neural", f"FLIP {rec['flip']:.4f}")
        rows.append([(enlarge(p, zoom), c) for p, c in zip(panels, captions)])
    overview = figure(rows, f"neumat compare --material {summary['material']}",
                      f"mean FLIP {summary['mean_flip']:.4f} over {len(rows)} views")
    write_png(out_dir / "views.png", overview)
    written.append(out_dir / "views.png")
    payload = {"format_version": METRICS_FORMAT_VERSION, "kind": "material fidelity", **summary,
               "notes": FIDELITY_NOTES}
    written.append(_write_text(out_dir / "metrics.json", json.dumps(_json_number(payload), indent=2) + "\n"))

    s = summary
    context = {"asset": s["asset"], "material file": s["source"], "evaluator": s["evaluator"], "device": s["device"],
               "size": f"{s['size'][0]}x{s['size'][1]} per view", "max depth": s["max_depth"],
               "reference": _sampling_text(s["reference_sampling"]), "neural": _sampling_text(s["neural_sampling"]),
               "reference cache": s["reference_cache"],
               "time": ", ".join(f"{k} {v:.0f} s" for k, v in s["seconds"].items())}
    body = ("<ul>" + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in context.items())
            + "</ul>" + f"<h2>Views</h2><p>Mean FLIP <b>{s['mean_flip']:.4f}</b>. Each side is the mean of two "
            "independent halves; their FLIP is that side's noise, which the measured FLIP includes. 'Noise "
            "alone' is the FLIP that both sides' noise gives by itself (the A halves' mean against the B "
            "halves' mean): a FLIP near it says the views cannot tell the material's error from noise.</p>"
            + _table(FIDELITY_HEADER, fidelity_rows(s))
            + "<ul>" + "".join(f"<li><b>{html.escape(v['name'])}</b>: {html.escape(v['shows'])}</li>"
                               for v in s["views"]) + "</ul>"
            + f"<h2>All views</h2><img src='{_png_data_uri(overview)}' alt='all views'>"
            + "".join(f"<h2>{html.escape(name)}</h2><img src='{_png_data_uri(fig)}' alt='{html.escape(name)}'>"
                      for name, fig in figures.items()))
    written.append(_write_text(out_dir / "report.html", _page(f"neumat compare --material {s['material']}", body)))
    return written
