"""Writing a trained NeuralMaterial as a neural asset (renderer/neural/asset.py, docs/assets.md)
and rebuilding the torch model from one.

`save_asset` writes every file into a temporary sibling directory and renames it into place, so an
interrupted bake (an exception, Ctrl-C) never leaves a half-written asset under the asset's name; an
existing asset is replaced only once the new one is complete. `load_model` rebuilds the model from
the fp32 master copy, bit for bit.
"""

import importlib.metadata
import json
import math
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from neumat.renderer.core.atomic_files import aside_path, temporary_dir
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.materials.graph import Material
from neumat.renderer.neural.asset import (
    ASSET_FORMAT, ASSET_FORMAT_VERSION, ASSET_SUFFIX, DIRECTION_FEATURES, LOBE_OUTPUTS, MANIFEST_NAME, NETWORK_NAMES,
    PRECISIONS, NeuralAsset, file_sha256, latents_file, level_shapes, load_asset, weights_file)
from neumat.training import lobe as analytic
from neumat.training import sampler as mixture
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig
from neumat.training.networks import ENCODER_HIDDEN, flatten, weight_layout
from neumat.training.settings import EVALUATOR_SIZES, parse_network

FP16_MAX = float(np.finfo(np.float16).max)

NETWORK_OUTPUTS = {
    "frames": "two frames: n = normalize(x[0:3] + (0,0,1)), t = x[3:6] + (1,0,0) made orthogonal to n, "
              "b = cross(n, t); the same for x[6:12] (training/frames.py)",
    "evaluator": "exp(x - 3) = RGB f(wi, wo) * |cos theta_o|",
    "sampler": "the 9 parameters of the two-lobe mixture (training/sampler.py)",
    "lobe": "f90 = sigmoid(x[0]), f0 = sigmoid(x[1:4]), alpha = exp(log(alpha_min) + log(alpha_max / alpha_min) "
            "sigmoid(x[4:6])) of the analytic GGX lobe added to the evaluator (training/lobe.py)",
}
NETWORK_INPUTS = {
    "frames": "latent (C)",
    "evaluator": "12 direction features (architecture.direction_encoding, training/frames.py), latent (C)",
    "sampler": "latent (C), wi (3) in the shading frame",
    "lobe": "latent (C)",
}
LATENT_ADDRESSING = ("level l is [h, w, C] = [resolution >> l, resolution >> l, C]; row j is v, column i is u; "
                     "texel (i, j) has its centre at uv = ((i + 0.5) / w, (j + 0.5) / h); uv wraps")


# --- the model's networks and arrays --------------------------------------------------------------

def network_modules(model: NeuralMaterial) -> dict[str, nn.Module]:
    """The exported networks by asset name (the encoder is never exported)."""
    modules = {"frames": model.frames, "evaluator": model.evaluator, "sampler": model.sampler, "lobe": model.lobe}
    return {n: modules[n] for n in NETWORK_NAMES if modules[n] is not None}


def network_layers(module: nn.Module) -> list[dict]:
    """The manifest's layer records of one network, in flatten() order: every parameter belongs to
    an nn.Linear; its weight is followed by its bias (if any); ReLU between layers, none after."""
    linears = {name: m for name, m in module.named_modules() if isinstance(m, nn.Linear)}
    entries = weight_layout(module)
    layers, k = [], 0
    while k < len(entries):
        prefix, _, kind = entries[k]["name"].rpartition(".")
        if prefix not in linears or kind != "weight":
            raise TypeError(f"cannot export parameter '{entries[k]['name']}': only Linear layers are supported")
        lin = linears[prefix]
        record = {"module": prefix, "inputs": lin.in_features, "outputs": lin.out_features,
                  "weight_offset": entries[k]["offset"], "bias_offset": None, "activation": "relu"}
        k += 1
        if k < len(entries) and entries[k]["name"] == f"{prefix}.bias":
            record["bias_offset"] = entries[k]["offset"]
            k += 1
        layers.append(record)
    layers[-1]["activation"] = "none"
    return layers


def model_arrays(model: NeuralMaterial) -> dict[str, np.ndarray]:
    """Every array file of the asset by file name: weights and latents, fp32 master and fp16.
    NeumatError if a value is non-finite or beyond float16's range."""
    fp32: list[tuple[str, str, np.ndarray]] = []  # (what, file, values)
    for name, module in network_modules(model).items():
        fp32.append((name, weights_file(name, "fp32"), flatten(module)))
    for lvl, tex in enumerate(model.latents.levels):
        values = np.ascontiguousarray(tex.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy())
        fp32.append((f"latents level {lvl}", latents_file(lvl, "fp32"), values))
    arrays: dict[str, np.ndarray] = {}
    for what, file, arr in fp32:
        if not np.all(np.isfinite(arr)):
            raise NeumatError(f"{what}: the trained values are not finite (NaN or infinity): training diverged; "
                              "nothing was written")
        peak = float(np.abs(arr).max()) if arr.size else 0.0
        if peak > FP16_MAX:
            raise NeumatError(f"{what}: a value of magnitude {peak:.4g} exceeds float16's range ({FP16_MAX:g}), "
                              "which the runtime needs; nothing was written")
        arrays[file] = arr
        arrays[file.replace("_fp32", "_fp16")] = arr.astype(np.float16)
    return arrays


def asset_sizes(model: NeuralMaterial) -> dict[str, int]:
    """Data bytes of the model's asset arrays (without .npy headers and the manifest)."""
    sizes = {f"{kind}_{p}_bytes": 0 for kind in ("weights", "latents") for p in PRECISIONS}
    for name, module in network_modules(model).items():
        n = sum(p.numel() for p in module.parameters())
        for p, dtype in PRECISIONS.items():
            sizes[f"weights_{p}_bytes"] += n * dtype.itemsize
    for tex in model.latents.levels:
        for p, dtype in PRECISIONS.items():
            sizes[f"latents_{p}_bytes"] += tex.numel() * dtype.itemsize
    sizes["runtime_bytes"] = sizes["weights_fp16_bytes"] + sizes["latents_fp16_bytes"]
    return sizes


# --- manifest -------------------------------------------------------------------------------------

def to_json(value, key: str = "value"):
    """`value` as strict JSON data: numpy scalars and arrays become numbers and lists, tuples lists,
    paths strings; non-finite floats become the strings 'inf', '-inf', 'nan'."""
    if isinstance(value, dict):
        return {str(k): to_json(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist(), key)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return to_json(value.item(), key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{key}: cannot store a {type(value).__name__} in JSON")


def dumps_json(value, indent: int = 0, width: int = 132) -> str:
    """Strict JSON, indented by one space per level, with any value that fits in `width` columns
    (shapes, layer records) kept on one line."""
    one = json.dumps(value, allow_nan=False)
    if len(one) + indent <= width or not isinstance(value, (dict, list)) or not value:
        return one
    pad = " " * (indent + 1)
    if isinstance(value, dict):
        items = [f"{pad}{json.dumps(k)}: {dumps_json(v, indent + 1, width)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + dumps_json(v, indent + 1, width) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def _software() -> dict:
    try:
        version = importlib.metadata.version("neumat")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"neumat": version, "torch": torch.__version__, "numpy": np.__version__}


def build_manifest(model: NeuralMaterial, material: Material, files: dict[str, dict], training: dict,
                   metrics: dict, timings: dict) -> dict:
    cfg = model.config
    c = cfg.latent_channels
    size, _ = parse_network(cfg.evaluator)
    networks = {}
    for name, module in network_modules(model).items():
        layers = network_layers(module)
        networks[name] = {
            "fp32": weights_file(name, "fp32"), "fp16": weights_file(name, "fp16"),
            "inputs": layers[0]["inputs"], "input": NETWORK_INPUTS[name],
            "outputs": layers[-1]["outputs"], "output": NETWORK_OUTPUTS[name],
            "size": sum(p.numel() for p in module.parameters()), "layers": layers}
    shapes = level_shapes(cfg.resolution, c)
    sizes = asset_sizes(model)
    sizes["files_bytes"] = sum(f["bytes"] for f in files.values())
    layout = material.layout
    return to_json({
        "format": ASSET_FORMAT,
        "format_version": ASSET_FORMAT_VERSION,
        "name": material.name,
        "source_hash": material.source_hash,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "software": _software(),
        "source": {
            "file": material.path.name, "description": material.description,
            "resolution": material.resolution,
            "parameter_layout": {"layer_types": list(layout.layer_types), "layer_offsets": list(layout.offsets),
                                 "width": layout.width, "names": layout.names()},
        },
        "architecture": {
            "latent_channels": c, "resolution": cfg.resolution, "levels": [list(s) for s in shapes],
            "direction_features": DIRECTION_FEATURES,
            "direction_encoding": cfg.directions,
            "frames": {"enabled": cfg.use_frames, "inputs": c, "outputs": 12, "bias": False},
            "lobe": {"enabled": model.lobe is not None, "inputs": c, "outputs": LOBE_OUTPUTS, "frame": 1,
                     "alpha_min": analytic.ALPHA_MIN, "alpha_max": analytic.ALPHA_MAX,
                     "output": "F D G2 / (4 wi.z), F = f0 + (f90 - f0) (1 - wi.h)^5, added to exp(x - 3) (training/lobe.py)"},
            "evaluator": {"size": size, "hidden": EVALUATOR_SIZES[size],
                          "inputs": DIRECTION_FEATURES + c, "outputs": 3, "output": "exp(x - 3)"},
            "sampler": {"hidden": mixture.SAMPLER_HIDDEN, "inputs": c + 3, "outputs": mixture.NUM_OUTPUTS,
                        "alpha_min": mixture.ALPHA_MIN, "alpha_max": mixture.ALPHA_MAX, "rho_max": mixture.RHO_MAX},
            "encoder": {"dropped": True, "used_in_training": cfg.use_encoder,
                        "inputs": cfg.encoder_inputs if cfg.use_encoder else None, "hidden": ENCODER_HIDDEN},
            "latent_init_std": cfg.latent_init_std,
        },
        "networks": networks,
        "latents": {"channels": c, "addressing": LATENT_ADDRESSING,
                    "levels": [{"level": lvl, "shape": list(s), "fp32": latents_file(lvl, "fp32"),
                                "fp16": latents_file(lvl, "fp16")} for lvl, s in enumerate(shapes)]},
        "files": files,
        "sizes": sizes,
        "training": training,
        "metrics": metrics,
        "timings": timings,
    }, "manifest")


# --- writing --------------------------------------------------------------------------------------

def _write_array(path: Path, array: np.ndarray) -> None:
    """One .npy file, flushed to disk (tests replace this to simulate an interrupted save)."""
    with open(path, "wb") as f:
        np.save(f, array, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def asset_path(directory: str | Path, material: Material) -> Path:
    """`directory` itself when it ends in .neumat, else `<directory>/<material name>.neumat`."""
    directory = Path(directory)
    if directory.suffix == ASSET_SUFFIX:
        return directory
    if not material.name or "/" in material.name or "\\" in material.name or material.name.startswith("."):
        raise NeumatError(f"material name {material.name!r} cannot name an asset folder; give the asset's path "
                          f"(ending in {ASSET_SUFFIX}) instead")
    return directory / f"{material.name}{ASSET_SUFFIX}"


def _replaceable(target: Path) -> bool:
    """Only an earlier asset (or an empty directory) may be replaced, never someone's other files."""
    if not target.exists() and not target.is_symlink():
        return True
    return target.is_dir() and not target.is_symlink() and (
        (target / MANIFEST_NAME).is_file() or not any(target.iterdir()))


def save_asset(directory: str | Path, model: NeuralMaterial, material: Material, training: dict,
               metrics: dict, timings: dict) -> Path:
    """Writes the model as `<directory>` (if it ends in .neumat) or `<directory>/<name>.neumat`,
    replacing an earlier asset there; returns the asset's path. `training`, `metrics` and `timings`
    are stored in the manifest as given (JSON-able values; numpy scalars are fine).

    Raises NeumatError before writing anything when the parent folder is missing, the target exists
    and is not an asset, or the weights or latents are non-finite or exceed float16's range."""
    target = asset_path(directory, material)
    parent = target.parent
    if not parent.is_dir():
        raise NeumatError(f"{target}: the folder '{parent}' does not exist")
    if not _replaceable(target):
        raise NeumatError(f"{target}: exists and is not a neural asset (no {MANIFEST_NAME}); not replacing it")
    arrays = model_arrays(model)
    # Fail on unstorable metadata before touching the disk.
    extra = {k: to_json(v, k) for k, v in (("training", training), ("metrics", metrics), ("timings", timings))}

    tmp = temporary_dir(target)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would stay on the renamed asset
        files = {}
        for file, arr in arrays.items():
            _write_array(tmp / file, arr)
            files[file] = {"dtype": arr.dtype.name, "shape": list(arr.shape), "bytes": (tmp / file).stat().st_size,
                           "sha256": file_sha256(tmp / file)}
        manifest = build_manifest(model, material, files, **extra)
        _write_text(tmp / MANIFEST_NAME, dumps_json(manifest) + "\n")
        if target.exists():
            old = aside_path(target)
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# --- reading --------------------------------------------------------------------------------------

def load_model(asset: NeuralAsset | str | Path) -> NeuralMaterial:
    """The NeuralMaterial of an asset (a loaded NeuralAsset or its path), on the CPU, in fp32,
    bit-identical to the model that was saved (the encoder is not part of an asset)."""
    if not isinstance(asset, NeuralAsset):
        asset = load_asset(asset)
    where = f"{asset.path.name}/{MANIFEST_NAME}"
    if asset.evaluator not in EVALUATOR_SIZES:
        raise NeumatError(f"{where}: architecture.evaluator.size: '{asset.evaluator}' is not one of this "
                          f"neumat's evaluators ({', '.join(EVALUATOR_SIZES)})")
    sampler = asset.manifest["architecture"]["sampler"]
    ours = {"hidden": mixture.SAMPLER_HIDDEN, "alpha_min": mixture.ALPHA_MIN, "alpha_max": mixture.ALPHA_MAX,
            "rho_max": mixture.RHO_MAX}
    for key, value in ours.items():
        if sampler.get(key) != value:
            raise NeumatError(f"{where}: architecture.sampler.{key}: {json.dumps(sampler.get(key))} != this "
                              f"neumat's {value}")
    if asset.lobe:
        lobe = asset.manifest["architecture"]["lobe"]
        for key, value in {"alpha_min": analytic.ALPHA_MIN, "alpha_max": analytic.ALPHA_MAX}.items():
            if lobe.get(key) != value:
                raise NeumatError(f"{where}: architecture.lobe.{key}: {json.dumps(lobe.get(key))} != this "
                                  f"neumat's {value}")
    config = NeuralMaterialConfig(resolution=asset.resolution, latent_channels=asset.latent_channels,
                                  evaluator=asset.network, directions=asset.directions,
                                  use_frames=asset.use_frames, use_encoder=False,
                                  latent_init_std=float(asset.manifest["architecture"].get("latent_init_std", 0.1)))
    with torch.random.fork_rng(devices=[]):  # the random initialisation is overwritten: keep the caller's RNG
        model = NeuralMaterial(config)
    modules = network_modules(model)
    with torch.no_grad():
        for name, layout in asset.networks.items():
            params = dict(modules[name].named_parameters())
            listed = {f"{layer.module}.{kind}" for layer in layout.layers
                      for kind in (("weight", "bias") if layer.bias_offset is not None else ("weight",))}
            if listed != set(params):
                raise NeumatError(f"{where}: networks.{name}.layers: parameters {sorted(listed)} do not match "
                                  f"this neumat's {name} network {sorted(params)}")
            flat = asset.weights_fp32[name]
            for layer in layout.layers:
                pairs = [("weight", layer.weight(flat))]
                if layer.bias_offset is not None:
                    pairs.append(("bias", layer.bias(flat)))
                for kind, values in pairs:
                    p = params[f"{layer.module}.{kind}"]
                    if tuple(p.shape) != values.shape:
                        raise NeumatError(f"{where}: networks.{name}: {layer.module}.{kind} has shape "
                                          f"{values.shape}, this neumat's network {tuple(p.shape)}")
                    p.copy_(torch.from_numpy(np.array(values, dtype=np.float32)))
        for lvl, values in enumerate(asset.latents_fp32):
            model.latents.fill_from(lvl, torch.from_numpy(np.array(values, dtype=np.float32)))
    return model
