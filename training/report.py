"""The bake report: how well a trained neural material matches its reference.

Two measurements (docs/baking.md, "The bake report"):

1. Held-out error on queries training never drew: fresh (uv, wi, wo, level) from neumat.training's
   distribution but a random stream of its own, compared with training's target (the reference at
   that level of its prefiltered parameter pyramid, `reference_target`, or the caller's `target`)
   by relative L1, L1 in log space and relative MSE (definitions in `error_metrics`).
2. Flat patches: level 0 of the material laid flat, one pixel per texel, lit by one directional light
   and seen from one direction; pixel = eval(uv, wi = view, wo = light) * LIGHT_IRRADIANCE, i.e.
   f * cos(theta_light) * E. Three fixed configurations (FLAT_PATCH_CONFIGS); the reference averages
   random walks per pixel until its own noise is far below the errors measured (adaptive, see
   REFERENCE_WALKS); the neural value reads latent level 0 directly (no stochastic level pick). Each configuration gets
   HDR-FLIP and PSNR and a side-by-side PNG (reference | neural | FLIP error map).

Everything lands in `out_dir`: flat_<config>.png, flat_<config>_{reference,neural}.exr,
report.json (every number) and report.md (for people).
"""

import math
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neumat.renderer.core.atomic_files import atomic_output
from neumat.renderer.images.io import to_display, write_image
from neumat.renderer.images.metrics import display_exposure, flip_error, psnr
from neumat.renderer.images.io import write_png
from neumat.renderer.images.panels import enlarge, figure
from neumat.renderer.materials import reference as ref
from neumat.renderer.materials.graph import Material
from neumat.renderer.neural.asset import MANIFEST_NAME
from neumat.training.export import asset_sizes, dumps_json, to_json
from neumat.training.model import NeuralMaterial
from neumat.training.losses import skill

REPORT_FORMAT_VERSION = 1


@dataclass(frozen=True)
class PatchConfig:
    """One flat-patch lighting setup. Polar angles from the normal, in degrees; the view lies at
    azimuth 180 degrees and the light at azimuth 0, so equal angles are the mirror configuration."""

    name: str
    view_deg: float
    light_deg: float
    description: str

    @property
    def wi(self) -> np.ndarray:
        t = math.radians(self.view_deg)
        return np.array([-math.sin(t), 0.0, math.cos(t)], np.float32)

    @property
    def wo(self) -> np.ndarray:
        t = math.radians(self.light_deg)
        return np.array([math.sin(t), 0.0, math.cos(t)], np.float32)


FLAT_PATCH_CONFIGS = (
    PatchConfig("front", 0.0, 30.0, "view along the normal, light 30 deg off it: the diffuse look"),
    PatchConfig("specular", 45.0, 45.0, "view and light 45 deg on opposite sides: the mirror direction, "
                                        "on the specular peak"),
    PatchConfig("grazing", 80.0, 60.0, "view 80 deg, light 60 deg on the opposite side: near grazing, "
                                       "forward scattering 10 deg off the mirror direction"),
)
LIGHT_IRRADIANCE = math.pi  # white; a white Lambertian surface facing the light would read 1.0
# The flat-patch reference is two independent half estimates, averaged. Starting at REFERENCE_WALKS
# walks per pixel in all, both halves are doubled until the FLIP between them is at most NOISE_TARGET
# (the average's own error is then about half that) or MAX_REFERENCE_WALKS is reached. FLIP falls
# more slowly than the noise (about walks^-0.37 where the noise falls as walks^-0.5:
# docs/reference.md), so the target is reached late; at 1024 walks most patches are at 0.001-0.025.
REFERENCE_WALKS = 64
MAX_REFERENCE_WALKS = 1024
NOISE_TARGET = 0.03
MAX_PATCH_TEXELS = 512  # larger materials show the top-left 512 x 512 texels of level 0
MIN_DISPLAY_PIXELS = 256  # smaller patches are enlarged (nearest neighbour) in the PNGs

HELDOUT_QUERIES = 1 << 16
HELDOUT_WALKS = 32  # random walks per held-out reference value
HELDOUT_STREAM = 0x68656C64  # mixed into the seed: the held-out stream is not the training stream
PATCH_STREAM = 0x70617463
LEVEL_RATE = math.log(2.0)  # held-out level = floor(Exp(rate)) clamped: level l with probability 2^-(l+1)
RELATIVE_EPS = 0.01  # the denominators' offset in relative L1 / relative MSE

Target = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]


# --- metrics --------------------------------------------------------------------------------------

def error_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Errors of pred against target (both [N, 3] linear RGB), means over queries and channels:
    rel_l1 = |y - t| / (|t| + 0.01); log_l1 = |log(1 + y) - log(1 + t)|;
    rel_mse = (y - t)^2 / (t^2 + 0.01); skill = 1 - logL1(y) / logL1(best constant) with
    logL1 = |log(y + 0.01) - log(t + 0.01)| and the per-channel median of t as the best constant
    (training/losses.py): 1 is perfect, a zero or any constant prediction scores <= 0."""
    y = np.asarray(pred, np.float64)
    t = np.asarray(target, np.float64)
    d = y - t
    return {"skill": float(skill(torch.from_numpy(y), torch.from_numpy(t))) if len(t) else float("nan"),
            "rel_l1": float(np.mean(np.abs(d) / (np.abs(t) + RELATIVE_EPS))),
            "log_l1": float(np.mean(np.abs(np.log1p(np.maximum(y, 0)) - np.log1p(np.maximum(t, 0))))),
            "rel_mse": float(np.mean(d * d / (t * t + RELATIVE_EPS))),
            "mean_target": float(np.mean(t)), "mean_prediction": float(np.mean(y)), "count": int(len(t))}


# --- flat patches ---------------------------------------------------------------------------------

def patch_texels(resolution: int) -> int:
    return min(resolution, MAX_PATCH_TEXELS)


def patch_uv(resolution: int, texels: int) -> np.ndarray:
    """uv [texels^2, 2] of the texel centres of the top-left texels x texels block of a level-0
    texture of `resolution`, row-major (row = v): pixel (row j, column i) is texel (i, j)."""
    c = (np.arange(texels, dtype=np.float64) + 0.5) / resolution
    v, u = np.meshgrid(c, c, indexing="ij")
    return np.stack([u.ravel(), v.ravel()], axis=-1).astype(np.float32)


def flat_patch_reference(reference: ref.ReferenceMaterial, config: PatchConfig, texels: int | None = None,
                         n_walks: int = REFERENCE_WALKS, seed: int = 0) -> np.ndarray:
    """The reference flat patch, linear HxWx3 float32 (module doc)."""
    res = reference.resolution[1]
    texels = texels or patch_texels(res)
    uv = patch_uv(res, texels)
    n = len(uv)
    f = reference.evaluate(uv, np.tile(config.wi, (n, 1)), np.tile(config.wo, (n, 1)), 0.0,
                     n_walks=n_walks, seed=seed)
    return (f * np.float32(LIGHT_IRRADIANCE)).reshape(texels, texels, 3)


def converged_flat_reference(reference: ref.ReferenceMaterial, config: PatchConfig, texels: int | None = None,
                             seed: int = 0, walks: int = REFERENCE_WALKS, max_walks: int = MAX_REFERENCE_WALKS,
                             noise_target: float = NOISE_TARGET) -> tuple[np.ndarray, int, float]:
    """(image, walks per pixel used, FLIP between the two half estimates): the adaptive reference
    described at REFERENCE_WALKS."""
    if walks < 2 or max_walks < walks:
        raise ValueError(f"need 2 <= walks <= max_walks, got {walks}, {max_walks}")
    seeds = np.random.default_rng([seed, PATCH_STREAM, zlib.crc32(config.name.encode())])
    half = walks // 2

    def estimate(n: int) -> np.ndarray:
        return flat_patch_reference(reference, config, texels, n, int(seeds.integers(0, 2**32)))

    a, b = estimate(half), estimate(half)
    while True:
        noise = flip_error(a, b)[1]
        if noise <= noise_target or 4 * half > max_walks:
            return 0.5 * (a + b), 2 * half, noise
        a, b = 0.5 * (a + estimate(half)), 0.5 * (b + estimate(half))
        half *= 2


def _model_device(model: NeuralMaterial) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def flat_patch_neural(model: NeuralMaterial, config: PatchConfig, texels: int | None = None,
                      chunk: int = 1 << 16) -> np.ndarray:
    """The neural flat patch from latent level 0 (deterministic), linear HxWx3 float32."""
    res = model.config.resolution
    texels = texels or patch_texels(res)
    dev = _model_device(model)
    uv = torch.from_numpy(patch_uv(res, texels)).to(dev)
    wi = torch.from_numpy(config.wi).to(dev).expand(chunk, 3)
    wo = torch.from_numpy(config.wo).to(dev).expand(chunk, 3)
    out = []
    for s in range(0, len(uv), chunk):
        lat = model.latents.sample_level(uv[s:s + chunk], 0)
        out.append(model.eval_from_latent(lat, wi[:len(lat)], wo[:len(lat)]).float().cpu())
    f = torch.cat(out).numpy() * np.float32(LIGHT_IRRADIANCE)
    return f.reshape(texels, texels, 3)


# --- held-out queries -----------------------------------------------------------------------------

def directions_from_angles(th: np.ndarray, ph: np.ndarray, td: np.ndarray, pd: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
    """(wi, wo) [n, 3] from Rusinkiewicz's angles (theta_h, phi_h, theta_d, phi_d): wi = R(h) d with
    d in h's frame (tangent along phi_h), wo = reflect(wi, h)."""
    h = np.stack([np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)], axis=-1)
    # d rotated out of h's frame: x' = cos th dx + sin th dz, z' = -sin th dx + cos th dz.
    dx, dy, dz = np.sin(td) * np.cos(pd), np.sin(td) * np.sin(pd), np.cos(td)
    x = np.cos(th) * dx + np.sin(th) * dz
    wi = np.stack([np.cos(ph) * x - np.sin(ph) * dy, np.sin(ph) * x + np.cos(ph) * dy,
                   -np.sin(th) * dx + np.cos(th) * dz], axis=-1)
    return wi, 2 * dz[:, None] * h - wi


def heldout_queries(n: int, num_levels: int, rng: np.random.Generator
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The training distribution (training/data.py) restricted to what a renderer queries:
    uv [n, 2] uniform; (wi, wo) [n, 3] from Rusinkiewicz angles (theta_h, phi_h, theta_d, phi_d)
    drawn uniformly, wi = R(h) d, wo = reflect(wi, h), pairs with either direction below the horizon
    redrawn; integer levels [n] (as float32) = floor(Exp(LEVEL_RATE)) clamped to the coarsest level."""
    wi_parts, wo_parts, have = [], [], 0
    while have < n:
        m = 2 * (n - have) + 64
        th, ph = rng.random(m) * (0.5 * np.pi), rng.random(m) * (2 * np.pi)
        td, pd = rng.random(m) * (0.5 * np.pi), rng.random(m) * (2 * np.pi)
        wi, wo = directions_from_angles(th, ph, td, pd)
        ok = (wi[:, 2] > 1e-4) & (wo[:, 2] > 1e-4)
        wi_parts.append(wi[ok])
        wo_parts.append(wo[ok])
        have += int(ok.sum())
    wi = np.concatenate(wi_parts)[:n]
    wo = np.concatenate(wo_parts)[:n]
    wi /= np.linalg.norm(wi, axis=-1, keepdims=True)
    wo /= np.linalg.norm(wo, axis=-1, keepdims=True)
    uv = rng.random((n, 2))
    level = np.minimum(np.floor(rng.exponential(1.0 / LEVEL_RATE, n)), num_levels - 1)
    return uv.astype(np.float32), wi.astype(np.float32), wo.astype(np.float32), level.astype(np.float32)


def reference_target(reference: ref.ReferenceMaterial, uv: np.ndarray, wi: np.ndarray, wo: np.ndarray,
                     level: np.ndarray, seed: int, n_walks: int = HELDOUT_WALKS) -> np.ndarray:
    """The training target (training/data.py): the reference at the query's level of its
    prefiltered parameter pyramid, averaged over n_walks walks, [N, 3]."""
    return reference.evaluate(uv, wi, wo, level, n_walks=n_walks, seed=seed)


@torch.no_grad()
def neural_values(model: NeuralMaterial, uv: np.ndarray, wi: np.ndarray, wo: np.ndarray, level: np.ndarray,
                  chunk: int = 1 << 16) -> np.ndarray:
    """The model at integer levels (bilinear within the level, no stochastic pick), [N, 3] float32."""
    dev = _model_device(model)
    out = []
    for s in range(0, len(uv), chunk):
        u, i, o = (torch.from_numpy(a[s:s + chunk]).to(dev) for a in (uv, wi, wo))
        lvl = torch.from_numpy(level[s:s + chunk]).to(dev).long()
        out.append(model.eval_from_latent(model.latents.sample_level(u, lvl), i, o).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 3), np.float32)


def heldout_error(model: NeuralMaterial, reference: ref.ReferenceMaterial, n: int = HELDOUT_QUERIES,
                  seed: int = 0, target: Target | None = None) -> dict:
    """Held-out errors (error_metrics) over all queries, the level-0 ones and the coarser ones, each
    with `reference_noise`: the same metrics between two independent target estimates (a floor the
    neural error cannot go much below). `target(uv, wi, wo, level, seed) -> [N, 3]` replaces
    reference_target."""
    if n < 1:
        raise ValueError(f"n_heldout must be >= 1, got {n}")
    rng = np.random.default_rng([seed, HELDOUT_STREAM])
    uv, wi, wo, level = heldout_queries(n, model.latents.num_levels, rng)
    seeds = [int(s) for s in rng.integers(0, 2**32, 2)]
    target = target or (lambda *q: reference_target(reference, *q))
    t0 = time.perf_counter()
    t = target(uv, wi, wo, level, seeds[0])
    t_second = target(uv, wi, wo, level, seeds[1])
    t1 = time.perf_counter()
    y = neural_values(model, uv, wi, wo, level)
    t2 = time.perf_counter()
    out = {"queries": n, "seed": seed, "stream": HELDOUT_STREAM}
    for name, sel in (("all", np.ones(n, bool)), ("level0", level == 0), ("coarse", level > 0)):
        if sel.any():
            out[name] = error_metrics(y[sel], t[sel])
            out[name]["reference_noise"] = error_metrics(t_second[sel], t[sel])
    out["timings"] = {"reference_s": t1 - t0, "neural_s": t2 - t1}
    return out


# --- images ---------------------------------------------------------------------------------------

def side_by_side(reference: np.ndarray, neural: np.ndarray, error_map: np.ndarray, exposure: float,
                 title: str, subtitle: str, captions: tuple[str, str, str]):
    """A PIL image: a two-line header, then reference | neural | FLIP map with a caption above each."""
    h, w = reference.shape[:2]
    scale = max(1, math.ceil(MIN_DISPLAY_PIXELS / max(h, w)))
    panels = [to_display(reference, exposure), to_display(neural, exposure),
              np.round(np.clip(error_map, 0, 1) * 255).astype(np.uint8)]
    return figure([[(enlarge(p, scale), c) for p, c in zip(panels, captions)]], title, subtitle)


def _write_text(path: Path, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --- the report -----------------------------------------------------------------------------------

def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def bake_report(model: NeuralMaterial, reference: ref.ReferenceMaterial, material: Material, out_dir: str | Path,
                seed: int = 0, n_heldout: int = HELDOUT_QUERIES, *, walks: int = REFERENCE_WALKS,
                max_walks: int = MAX_REFERENCE_WALKS, noise_target: float = NOISE_TARGET,
                target: Target | None = None, timings: dict | None = None, asset_dir: str | Path | None = None,
                training: dict | None = None, log: Callable[[str], None] | None = None) -> dict:
    """Measures `model` against `reference` (module doc), writes the images, report.json and
    report.md into `out_dir` (created if missing) and returns the report as a dict (report.json's
    content, with float infinities). `timings` (e.g. the bake's training time) and `training`
    (its settings) are copied into the report; `asset_dir`, an asset saved already, adds its size
    on disk. report["metrics"] is the compact summary meant for the asset manifest. `log` gets a
    line per step: at 512 x 512 the converged flat patches take minutes on lavapipe."""
    start = time.perf_counter()
    say = log or (lambda line: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    res = model.config.resolution
    if tuple(reference.resolution) != (res, res):
        raise ValueError(f"the model's level 0 is {res} x {res} but the reference's is {reference.resolution}")
    texels = patch_texels(res)

    say(f"report: held-out error over {n_heldout} queries")
    heldout = heldout_error(model, reference, n_heldout, seed, target)
    configs, t_ref, t_nn, t_flip = [], 0.0, 0.0, 0.0
    for i, cfg in enumerate(FLAT_PATCH_CONFIGS):
        say(f"report: flat patch {i + 1}/{len(FLAT_PATCH_CONFIGS)} ({cfg.name}), {texels} x {texels} texels: "
            f"converging the reference ({walks}-{max_walks} walks)")
        t0 = time.perf_counter()
        ref_img, used, noise = converged_flat_reference(reference, cfg, texels, seed, walks, max_walks,
                                                        noise_target)
        t1 = time.perf_counter()
        nn_img = flat_patch_neural(model, cfg, texels)
        t2 = time.perf_counter()
        error_map, flip_mean = flip_error(ref_img, nn_img)
        t3 = time.perf_counter()
        t_ref, t_nn, t_flip = t_ref + t1 - t0, t_nn + t2 - t1, t_flip + t3 - t2
        exposure = display_exposure(ref_img)
        value = psnr(ref_img, nn_img, exposure)
        png = out_dir / f"flat_{cfg.name}.png"
        title = f"{material.name}: {cfg.name} (view {cfg.view_deg:g} deg, light {cfg.light_deg:g} deg)"
        psnr_text = "inf" if math.isinf(value) else f"{value:.2f}"
        subtitle = (f"FLIP {flip_mean:.4f}   PSNR {psnr_text} dB   level 0, {texels} x {texels} texels   "
                    f"display: {exposure:+.1f} EV, ACES, sRGB")
        captions = (f"reference ({used} walks, noise FLIP {noise:.3f})", f"neural ({model.config.evaluator})",
                    "FLIP error (black 0, yellow 1)")
        write_png(png, side_by_side(ref_img, nn_img, error_map, exposure, title, subtitle, captions))
        write_image(out_dir / f"flat_{cfg.name}_reference.exr", ref_img)
        write_image(out_dir / f"flat_{cfg.name}_neural.exr", nn_img)
        configs.append({
            "name": cfg.name, "description": cfg.description, "view_deg": cfg.view_deg, "light_deg": cfg.light_deg,
            "wi": cfg.wi, "wo": cfg.wo, "flip": flip_mean, "psnr_db": value, "exposure_ev": exposure,
            "reference_walks": used, "reference_noise_flip": noise,
            "mean_reference": float(ref_img.mean()), "mean_neural": float(nn_img.mean()),
            "image": png.name, "reference_exr": f"flat_{cfg.name}_reference.exr",
            "neural_exr": f"flat_{cfg.name}_neural.exr"})

    sizes = asset_sizes(model)
    if asset_dir is not None:
        sizes["asset_bytes"] = _dir_bytes(Path(asset_dir))
    flips = {c["name"]: c["flip"] for c in configs}
    metrics = {
        "heldout_skill": heldout["all"]["skill"], "heldout_skill_reference": heldout["all"]["reference_noise"]["skill"],
        "heldout_rel_l1": heldout["all"]["rel_l1"], "heldout_log_l1": heldout["all"]["log_l1"],
        "heldout_rel_mse": heldout["all"]["rel_mse"],
        "heldout_level0_rel_l1": heldout["level0"]["rel_l1"] if "level0" in heldout else None,
        "flip": flips, "flip_mean": float(np.mean(list(flips.values()))),
        "psnr_db": {c["name"]: c["psnr_db"] for c in configs},
    }
    report = {
        "format": "neumat-bake-report", "format_version": REPORT_FORMAT_VERSION,
        "material": {"name": material.name, "file": material.path.name, "source_hash": material.source_hash,
                     "description": material.description, "layer_types": list(material.layout.layer_types),
                     "parameters_per_texel": material.layout.width},
        "model": {"resolution": res, "levels": model.latents.num_levels,
                  "latent_channels": model.config.latent_channels, "evaluator": model.config.evaluator,
                  "use_frames": model.config.use_frames},
        "seed": seed,
        "metrics": metrics,
        "heldout": {k: v for k, v in heldout.items() if k != "timings"},
        "flat_patch": {"light_irradiance": LIGHT_IRRADIANCE, "texels": texels,
                       "reference": f"two half estimates, doubled from {walks} walks in all until their FLIP is <= "
                                    f"{noise_target} or {max_walks} walks",
                       "pixel": "eval(uv, wi = view, wo = light) * light_irradiance, latent level 0",
                       "psnr": "on the displayed images (exposure, ACES, sRGB), peak 1",
                       "configs": configs},
        "sizes": sizes,
        "training": training or {},
        "timings": {**(timings or {}),
                    "report": {"heldout_reference_s": heldout["timings"]["reference_s"],
                               "heldout_neural_s": heldout["timings"]["neural_s"],
                               "flat_reference_s": t_ref, "flat_neural_s": t_nn, "flip_s": t_flip,
                               "total_s": time.perf_counter() - start}},
    }
    write_report(report, out_dir)
    return report


def _fmt(v, digits: int = 4) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.{digits}g}"
    return str(v)


def _kib(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n < 1 << 20 else f"{n / (1 << 20):.2f} MiB"


SKILL_WARNING = 0.3  # below: the report says the model hardly resembles its reference


def _skill_warning(value: float) -> str:
    if value >= SKILL_WARNING:
        return ""
    return (f" **Warning: below {SKILL_WARNING}: this model hardly resembles its reference (a collapsed "
            "or badly undertrained bake).**")


def report_markdown(report: dict) -> str:
    mat, mdl, m = report["material"], report["model"], report["metrics"]
    fp = report["flat_patch"]
    lines = [
        f"# Bake report: {mat['name']}", "",
        f"{mat['description']}".strip(), "",
        f"- source `{mat['file']}` (sha256 {mat['source_hash'][:16]}...), layers {', '.join(mat['layer_types'])}, "
        f"K = {mat['parameters_per_texel']}",
        f"- model: {mdl['latent_channels']}-channel latents, {mdl['resolution']} x {mdl['resolution']} level 0, "
        f"{mdl['levels']} levels, evaluator {mdl['evaluator']}, learned frames {'on' if mdl['use_frames'] else 'off'}",
        "", f"**Held-out skill {_fmt(m['heldout_skill'], 3)}** (a second reference estimate scores "
        f"{_fmt(m['heldout_skill_reference'], 3)}): 1 - log-L1 error / log-L1 error of the best constant "
        "(the per-channel median target), on the held-out queries below. 1 is perfect; a zero or "
        "constant prediction scores 0 or less, whatever the material." + _skill_warning(m['heldout_skill']),
        "", "## Flat patches", "",
        f"Level 0, {fp['texels']} x {fp['texels']} texels, one pixel per texel; pixel = eval(uv, wi = view, "
        f"wo = light) x {fp['light_irradiance']:.4g} (a white Lambertian surface facing the light reads 1). "
        f"Reference: {fp['reference']}; the noise column is that FLIP (the reference's own error is "
        "about half of it). PSNR on the displayed images.", "",
        "| configuration | view | light (opposite azimuth) | FLIP | PSNR (dB) | reference walks "
        "| reference noise (FLIP) | mean reference | mean neural |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c in fp["configs"]:
        lines.append(f"| {c['name']} | {c['view_deg']:g} deg | {c['light_deg']:g} deg | "
                     f"{_fmt(c['flip'])} | {_fmt(c['psnr_db'])} | {c['reference_walks']} | "
                     f"{_fmt(c['reference_noise_flip'], 3)} | {_fmt(c['mean_reference'])} | "
                     f"{_fmt(c['mean_neural'])} |")
    lines += ["", f"Mean FLIP {_fmt(m['flip_mean'])}.", ""]
    for c in fp["configs"]:
        lines += [f"**{c['name']}**: {c['description']}.", "", f"![{c['name']}]({c['image']})", ""]
    h = report["heldout"]
    lines += ["## Held-out queries", "",
              f"{h['queries']} fresh queries from neumat.training's distribution (both directions above the horizon) "
              f"on a random stream training never uses (seed {h['seed']}), against training's targets. "
              "rel L1 = |y - t| / (|t| + 0.01), log L1 = |log(1 + y) - log(1 + t)|, "
              "rel MSE = (y - t)^2 / (t^2 + 0.01), averaged over queries and RGB. The reference-noise column "
              "compares two independent reference estimates.", "",
              "| queries | count | skill | rel L1 | log L1 | rel MSE | reference noise (rel L1) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in (("all", "all"), ("level0", "level 0"), ("coarse", "levels >= 1")):
        if key in h:
            e = h[key]
            lines.append(f"| {label} | {e['count']} | {_fmt(e['skill'], 3)} | {_fmt(e['rel_l1'])} | "
                         f"{_fmt(e['log_l1'])} | {_fmt(e['rel_mse'])} | {_fmt(e['reference_noise']['rel_l1'])} |")
    s = report["sizes"]
    lines += ["", "## Sizes", "",
              f"- runtime (fp16): weights {_kib(s['weights_fp16_bytes'])}, latents {_kib(s['latents_fp16_bytes'])}",
              f"- master (fp32): weights {_kib(s['weights_fp32_bytes'])}, latents {_kib(s['latents_fp32_bytes'])}"]
    if "asset_bytes" in s:
        lines.append(f"- asset on disk: {_kib(s['asset_bytes'])}")
    lines += ["", "## Timings", ""]

    def walk(d: dict, prefix: str = "") -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                lines.append(f"- {prefix}{k}: {_fmt(v, 3)}" + (" s" if k.endswith("_s") else ""))

    walk(report["timings"])
    return "\n".join(lines) + "\n"


def write_report(report: dict, out_dir: str | Path) -> None:
    """report.json (strict JSON: infinities as the string 'inf') and report.md."""
    out_dir = Path(out_dir)
    _write_text(out_dir / "report.json", dumps_json(to_json(report, "report")) + "\n")
    _write_text(out_dir / "report.md", report_markdown(report))


def add_asset_size(report: dict, out_dir: str | Path, asset_dir: str | Path) -> dict:
    """For a bake that saves the asset after the report: records the asset's size on disk and
    rewrites report.json and report.md."""
    asset_dir = Path(asset_dir)
    if not (asset_dir / MANIFEST_NAME).is_file():
        raise ValueError(f"{asset_dir}: not a neural asset")
    report["sizes"]["asset_bytes"] = _dir_bytes(asset_dir)
    write_report(report, out_dir)
    return report
