"""Neural material assets: the versioned on-disk format `neumat bake` writes and the renderer loads.

An asset is a directory `<name>.neumat/` holding `manifest.json` and plain `.npy` arrays (numpy's
own format: loadable with `np.load(path)` alone, no pickles). docs/assets.md describes every
file and manifest key; the short version:

- `<network>_fp32.npy` / `<network>_fp16.npy`: one flat float vector per network (`frames`,
  `evaluator`, `sampler`, and `lobe` for a `SIZE+lobe` network), the fp32 master weights of training and their fp16 rounding that the
  runtime uses. Layer by layer, the weight matrix [out, in] row-major (W[o, i] at
  weight_offset + o * in + i), then its bias [out] (bias_offset = weight_offset + out * in).
- `latents_fp32_level<l>.npy` / `latents_fp16_level<l>.npy`: latent pyramid level l as [h, w, C]
  (row = v, column = u), level 0 the finest, down to 1 x 1.

`load_asset` checks everything it reads and reports each problem as one NeumatError naming the file
and the field, e.g. `brass.neumat/manifest.json: format_version: 4 is newer than this neumat (3)`.
This module uses numpy only: the renderer never imports `training`.
"""

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neumat.renderer.core.errors import NeumatError

ASSET_FORMAT = "neumat-neural-material"
# 2: architecture.direction_encoding and architecture.lobe (version 1: vectors, no lobe); 3: the lobe's
# outputs are f90, f0 (version 2's were a gate and f0, a different function: such assets are refused)
ASSET_FORMAT_VERSION = 3
ASSET_SUFFIX = ".neumat"
MANIFEST_NAME = "manifest.json"

NETWORK_NAMES = ("frames", "evaluator", "sampler", "lobe")  # manifest and file order
PRECISIONS = {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16)}
DIRECTION_FEATURES = 12  # wi and wo (or h and d) in two learned frames (training/frames.py)
DIRECTION_ENCODINGS = ("vectors", "half_difference")  # training/frames.py
LOBE_OUTPUTS = 6  # f90, f0 (RGB), alpha_x, alpha_y (training/lobe.py)
LOBE_SUFFIX = "+lobe"
FRAME_OUTPUTS = 12  # two (normal, tangent) offsets
EVALUATOR_OUTPUTS = 3  # RGB
SAMPLER_OUTPUTS = 9  # mixture parameters (training/sampler.py)

_EVALUATOR_SIZE = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")


def weights_file(network: str, precision: str) -> str:
    """The file of one network's flat weights, e.g. `evaluator_fp16.npy`."""
    return f"{network}_{precision}.npy"


def latents_file(level: int, precision: str) -> str:
    """The file of one latent level, e.g. `latents_fp16_level0.npy`."""
    return f"latents_{precision}_level{level}.npy"


def evaluator_hidden(size: str) -> list[int]:
    """Hidden widths from an evaluator size name: '2x32' -> [32, 32]. ValueError if malformed."""
    m = _EVALUATOR_SIZE.fullmatch(size) if isinstance(size, str) else None
    if not m:
        raise ValueError(f"an evaluator size is '<layers>x<width>' such as '2x32', got {size!r}")
    return [int(m.group(2))] * int(m.group(1))


def level_shapes(resolution: int, channels: int) -> list[tuple[int, int, int]]:
    """[h, w, C] of every pyramid level, finest first: resolution x resolution down to 1 x 1."""
    return [(resolution >> lvl, resolution >> lvl, channels) for lvl in range(int(math.log2(resolution)) + 1)]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class LayerLayout:
    """One linear layer inside a network's flat vector (offsets relative to that vector)."""

    module: str  # the torch module path, e.g. 'mlp.layers.0' (parameters '<module>.weight', '.bias')
    inputs: int
    outputs: int
    weight_offset: int
    bias_offset: int | None  # None: no bias (the frames layer)
    activation: str  # 'relu' or 'none'

    def weight(self, flat: np.ndarray) -> np.ndarray:
        """W [outputs, inputs] (a view into `flat`)."""
        n = self.inputs * self.outputs
        return flat[self.weight_offset:self.weight_offset + n].reshape(self.outputs, self.inputs)

    def bias(self, flat: np.ndarray) -> np.ndarray | None:
        if self.bias_offset is None:
            return None
        return flat[self.bias_offset:self.bias_offset + self.outputs]


@dataclass(frozen=True)
class NetworkLayout:
    name: str
    inputs: int
    outputs: int
    size: int  # floats in the flat vector
    output: str  # what the last layer's outputs mean (documentation, e.g. 'exp(x - 3) = RGB f * cos')
    layers: tuple[LayerLayout, ...]


@dataclass
class NeuralAsset:
    """A loaded, checked asset. Arrays are numpy; weights are flat per network (see LayerLayout)."""

    path: Path
    manifest: dict
    name: str
    source_hash: str
    evaluator: str  # size name, e.g. '2x32'
    latent_channels: int
    resolution: int  # latent level 0 is resolution x resolution
    use_frames: bool
    directions: str  # the evaluator's direction features: 'vectors' or 'half_difference'
    lobe: bool  # the analytic GGX lobe (training/lobe.py) is part of the evaluator
    networks: dict[str, NetworkLayout]  # the networks present, in NETWORK_NAMES order
    weights_fp32: dict[str, np.ndarray]  # network -> float32 [size]
    weights_fp16: dict[str, np.ndarray]  # network -> float16 [size]
    latents_fp32: list[np.ndarray]  # level -> float32 [h, w, C], finest first
    latents_fp16: list[np.ndarray]  # level -> float16 [h, w, C]

    @property
    def network(self) -> str:
        """The bake's network spec: the evaluator size, '+lobe' with the lobe (e.g. '2x32+lobe')."""
        return self.evaluator + (LOBE_SUFFIX if self.lobe else "")

    @property
    def num_levels(self) -> int:
        return len(self.latents_fp16)

    def layer_arrays(self, network: str, precision: str = "fp16") -> list[tuple[np.ndarray, np.ndarray | None]]:
        """(W [out, in], b [out] or None) for every layer of a network."""
        flat = (self.weights_fp16 if precision == "fp16" else self.weights_fp32)[network]
        return [(layer.weight(flat), layer.bias(flat)) for layer in self.networks[network].layers]


# --- checking -------------------------------------------------------------------------------------

class _Where:
    """Builds the `<asset>/<file>: <field>: <message>` errors."""

    def __init__(self, asset_dir: Path):
        self.dir = asset_dir

    def error(self, file: str, field: str | None, message: str) -> NeumatError:
        where = f"{self.dir.name}/{file}"
        return NeumatError(f"{where}: {field}: {message}" if field else f"{where}: {message}")


def _field(where: _Where, doc: dict, path: str, kind: type | tuple[type, ...], prefix: str = ""):
    """The value at a dotted key path of the manifest (below `prefix`, the path of `doc` itself),
    checked to be of `kind` (a bool is not an int)."""
    value: object = doc
    walked = []
    for key in path.split("."):
        walked.append(key)
        if not isinstance(value, dict) or key not in value:
            raise where.error(MANIFEST_NAME, prefix + ".".join(walked), "missing")
        value = value[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        names = " or ".join("number" if k is float else k.__name__ for k in kinds)
        raise where.error(MANIFEST_NAME, prefix + path, f"must be {names}, got {json.dumps(value)}")
    return value


def _positive_int(where: _Where, doc: dict, path: str, prefix: str = "") -> int:
    v = _field(where, doc, path, int, prefix)
    if v < 1:
        raise where.error(MANIFEST_NAME, prefix + path, f"must be >= 1, got {v}")
    return v


def _read_manifest(where: _Where, path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise where.error(MANIFEST_NAME, None, "missing (not a complete neural asset)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise where.error(MANIFEST_NAME, None, f"cannot read ({e})") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise where.error(MANIFEST_NAME, None, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(doc, dict):
        raise where.error(MANIFEST_NAME, None, "must hold a JSON object")
    fmt = doc.get("format")
    if fmt != ASSET_FORMAT:
        raise where.error(MANIFEST_NAME, "format", f"expected '{ASSET_FORMAT}', got {json.dumps(fmt)}")
    version = _field(where, doc, "format_version", int)
    if version > ASSET_FORMAT_VERSION:
        raise where.error(MANIFEST_NAME, "format_version",
                          f"{version} is newer than this neumat ({ASSET_FORMAT_VERSION}); update neumat")
    if version < 1:
        raise where.error(MANIFEST_NAME, "format_version", f"must be >= 1, got {version}")
    return doc


def _check_network(where: _Where, doc: dict, name: str, inputs: int, hidden: list[int], outputs: int,
                   bias: bool) -> NetworkLayout:
    key = f"networks.{name}"
    layers_raw = _field(where, doc, f"{key}.layers", list)
    widths = [inputs, *hidden, outputs]
    if len(layers_raw) != len(widths) - 1:
        raise where.error(MANIFEST_NAME, f"{key}.layers",
                          f"{len(layers_raw)} layers, but the architecture gives {len(widths) - 1} ({widths})")
    layers, offset = [], 0
    for i, raw in enumerate(layers_raw):
        lk = f"{key}.layers.{i}"
        if not isinstance(raw, dict):
            raise where.error(MANIFEST_NAME, lk, "must be an object")
        module = _field(where, raw, "module", str, f"{lk}.")
        n_in, n_out = (_positive_int(where, raw, k, f"{lk}.") for k in ("inputs", "outputs"))
        if (n_in, n_out) != (widths[i], widths[i + 1]):
            raise where.error(MANIFEST_NAME, lk, f"shape {n_in} -> {n_out} != architecture "
                                                 f"{widths[i]} -> {widths[i + 1]}")
        w_off = _field(where, raw, "weight_offset", int, f"{lk}.")
        if w_off != offset:
            raise where.error(MANIFEST_NAME, f"{lk}.weight_offset",
                              f"{w_off} leaves a gap or overlap: the previous data ends at {offset}")
        offset += n_in * n_out
        b_off = raw.get("bias_offset")
        if bias:
            if b_off != offset or isinstance(b_off, bool):
                raise where.error(MANIFEST_NAME, f"{lk}.bias_offset",
                                  f"{json.dumps(b_off)} != {offset} (the bias follows the weight matrix)")
            offset += n_out
        elif b_off is not None:
            raise where.error(MANIFEST_NAME, f"{lk}.bias_offset", f"the {name} layer has no bias, got {b_off}")
        activation = _field(where, raw, "activation", str, f"{lk}.")
        expected = "none" if i == len(layers_raw) - 1 else "relu"
        if activation != expected:
            raise where.error(MANIFEST_NAME, f"{lk}.activation", f"'{activation}' != '{expected}'")
        layers.append(LayerLayout(module, n_in, n_out, w_off, b_off, activation))
    size = _field(where, doc, f"{key}.size", int)
    if size != offset:
        raise where.error(MANIFEST_NAME, f"{key}.size", f"{size} != {offset}, the end of the last layer")
    output = doc["networks"][name].get("output", "")
    return NetworkLayout(name, inputs, outputs, size, str(output), tuple(layers))


def _check_npy_header(where: _Where, file: str, path: Path, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """The header's shape and dtype against the manifest's, and the file's size against them,
    before np.load allocates what the header claims (4e12 elements: 7 TiB)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version[0]}.{version[1]} (neumat writes 1.0)")
            header_shape, fortran, header_dtype = read_header(f)
            data_start = f.tell()
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as e:
        raise where.error(file, None, f"not a readable .npy array ({e})") from None
    if tuple(header_shape) != shape:
        raise where.error(file, "shape", f"{tuple(header_shape)} != manifest {shape}")
    if header_dtype != dtype:
        raise where.error(file, "dtype", f"{header_dtype.str} != manifest {dtype.name} (little-endian)")
    if fortran:
        raise where.error(file, None, "a Fortran-ordered array; neumat writes C order")
    expected = data_start + math.prod(shape) * dtype.itemsize
    if path.stat().st_size != expected:
        raise where.error(file, None, f"{path.stat().st_size} bytes, but its header describes {expected}")


def _load_array(where: _Where, doc: dict, file: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    entry = doc["files"].get(file) if isinstance(doc.get("files"), dict) else None
    if not isinstance(entry, dict):
        raise where.error(MANIFEST_NAME, f"files.{file}", "missing")
    listed = entry.get("shape")
    if listed != list(shape):
        raise where.error(MANIFEST_NAME, f"files.{file}.shape",
                          f"{json.dumps(listed)} != {list(shape)} from the architecture")
    if entry.get("dtype") != dtype.name:
        raise where.error(MANIFEST_NAME, f"files.{file}.dtype", f"{json.dumps(entry.get('dtype'))} != '{dtype.name}'")
    path = where.dir / file
    if not path.is_file():
        raise where.error(file, None, "missing")
    _check_npy_header(where, file, path, shape, dtype)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise where.error(file, None, f"not a readable .npy array ({e})") from None
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        first = np.argwhere(~np.isfinite(arr))[0].tolist()
        raise where.error(file, "values", f"{bad} non-finite values (NaN or infinity), the first at index {first}")
    digest = entry.get("sha256")
    if digest != file_sha256(path):
        raise where.error(file, "sha256", "the file's contents differ from manifest.json's files."
                                          f"{file}.sha256 (corrupted or replaced)")
    return arr


def _check_rounding(where: _Where, file16: str, arr16: np.ndarray, file32: str, arr32: np.ndarray) -> None:
    rounded = arr32.astype(np.float16)
    if not np.array_equal(rounded.view(np.uint16), arr16.view(np.uint16)):
        first = np.argwhere(rounded.view(np.uint16) != arr16.view(np.uint16))[0].tolist()
        raise where.error(file16, "values", f"not {file32} rounded to float16 (first difference at index {first})")


def load_asset(path: str | Path, expect_source_hash: str | None = None) -> NeuralAsset:
    """Loads and checks a neural asset directory. With `expect_source_hash` (a Material's
    source_hash), an asset baked from a different version of the material is an error."""
    path = Path(path)
    if not path.is_dir():
        hint = " (a neural asset is a directory with manifest.json)" if path.exists() else ""
        raise NeumatError(f"{path}: no such neural asset{hint}")
    where = _Where(path)
    doc = _read_manifest(where, path / MANIFEST_NAME)

    name = _field(where, doc, "name", str)
    source_hash = _field(where, doc, "source_hash", str)
    if not re.fullmatch(r"[0-9a-f]{64}", source_hash):
        raise where.error(MANIFEST_NAME, "source_hash",
                          f"must be 64 lowercase hex digits (sha256), got '{source_hash}'")
    if expect_source_hash is not None and source_hash != expect_source_hash:
        raise where.error(MANIFEST_NAME, "source_hash",
                          f"the asset was baked from another version of the material (asset {source_hash[:12]}, "
                          f"material now {expect_source_hash[:12]}); bake it again")

    arch = "architecture"
    channels = _positive_int(where, doc, f"{arch}.latent_channels")
    resolution = _positive_int(where, doc, f"{arch}.resolution")
    if resolution & (resolution - 1):
        raise where.error(MANIFEST_NAME, f"{arch}.resolution", f"must be a power of two, got {resolution}")
    shapes = level_shapes(resolution, channels)
    listed_levels = _field(where, doc, f"{arch}.levels", list)
    if listed_levels != [list(s) for s in shapes]:
        raise where.error(MANIFEST_NAME, f"{arch}.levels", f"{json.dumps(listed_levels)} != "
                                                           f"{[list(s) for s in shapes]} (resolution {resolution}, "
                                                           f"{channels} channels)")
    if _field(where, doc, f"{arch}.direction_features", int) != DIRECTION_FEATURES:
        raise where.error(MANIFEST_NAME, f"{arch}.direction_features", f"must be {DIRECTION_FEATURES}")
    size = _field(where, doc, f"{arch}.evaluator.size", str)
    try:
        hidden = evaluator_hidden(size)
    except ValueError as e:
        raise where.error(MANIFEST_NAME, f"{arch}.evaluator.size", str(e)) from None
    if _field(where, doc, f"{arch}.evaluator.hidden", list) != hidden:
        raise where.error(MANIFEST_NAME, f"{arch}.evaluator.hidden", f"!= {hidden} from size '{size}'")
    sampler_hidden = _field(where, doc, f"{arch}.sampler.hidden", list)
    if not sampler_hidden or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in sampler_hidden):
        raise where.error(MANIFEST_NAME, f"{arch}.sampler.hidden", f"must be a list of positive integers, "
                                                                   f"got {json.dumps(sampler_hidden)}")
    use_frames = _field(where, doc, f"{arch}.frames.enabled", bool)
    version = doc["format_version"]
    directions, lobe = "vectors", False  # version 1 had neither choice
    if version >= 2:
        directions = _field(where, doc, f"{arch}.direction_encoding", str)
        if directions not in DIRECTION_ENCODINGS:
            raise where.error(MANIFEST_NAME, f"{arch}.direction_encoding",
                              f"'{directions}' is not one of {', '.join(DIRECTION_ENCODINGS)}")
        lobe = _field(where, doc, f"{arch}.lobe.enabled", bool)
        if lobe and version < 3:
            raise where.error(MANIFEST_NAME, f"{arch}.lobe.enabled", "a format-2 lobe (gate and f0), which this "
                              "neumat no longer evaluates (format 3 decodes f0 and f90); bake the material again")

    expected = {"evaluator": (DIRECTION_FEATURES + channels, hidden, EVALUATOR_OUTPUTS, True),
                "sampler": (channels + 3, sampler_hidden, SAMPLER_OUTPUTS, True)}
    if use_frames:
        expected["frames"] = (channels, [], FRAME_OUTPUTS, False)
    if lobe:
        expected["lobe"] = (channels, [], LOBE_OUTPUTS, True)
    present = _field(where, doc, "networks", dict)
    for extra in sorted(set(present) - set(expected)):
        why = {"frames": " (architecture.frames.enabled is false)", "lobe": " (architecture.lobe.enabled is false)"}
        raise where.error(MANIFEST_NAME, f"networks.{extra}", "unexpected network" + why.get(extra, ""))
    networks = {n: _check_network(where, doc, n, *expected[n]) for n in NETWORK_NAMES if n in expected}

    _field(where, doc, "files", dict)
    weights = {p: {} for p in PRECISIONS}
    for n, layout in networks.items():
        for precision, dtype in PRECISIONS.items():
            weights[precision][n] = _load_array(where, doc, weights_file(n, precision), (layout.size,), dtype)
        _check_rounding(where, weights_file(n, "fp16"), weights["fp16"][n], weights_file(n, "fp32"), weights["fp32"][n])
    latents = {p: [] for p in PRECISIONS}
    for lvl, shape in enumerate(shapes):
        for precision, dtype in PRECISIONS.items():
            latents[precision].append(_load_array(where, doc, latents_file(lvl, precision), shape, dtype))
        _check_rounding(where, latents_file(lvl, "fp16"), latents["fp16"][lvl],
                        latents_file(lvl, "fp32"), latents["fp32"][lvl])

    return NeuralAsset(path=path, manifest=doc, name=name, source_hash=source_hash, evaluator=size,
                       latent_channels=channels, resolution=resolution, use_frames=use_frames,
                       directions=directions, lobe=lobe,
                       networks=networks, weights_fp32=weights["fp32"], weights_fp16=weights["fp16"],
                       latents_fp32=latents["fp32"], latents_fp16=latents["fp16"])
