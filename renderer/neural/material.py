"""Neural materials on the device, and the batched queries tests and tools run on them; the same
shape as the reference materials' API (renderer/materials/reference.py), so callers treat both alike.

`NeuralMaterial.from_asset(device, path)` loads and checks an asset (renderer/neural/asset.py),
generates (or finds in the cache) its Slang module (renderer/neural/codegen.py) and uploads its
latent pyramid. On the device every kernel binds a `NeuralMaterialSet`
(shaders/neural/neural_material.slang): one latent buffer (a uint4 of 8 fp16 channels per texel),
one level table and one record per material, and one weight buffer for the CoopVec path. A
`NeuralMaterialSet` here packs several materials for one dispatch (a path tracer, the scalability
benchmark) together with their generated set module; a `NeuralMaterial` owns a set of one.

The MLP path is chosen once per material: `mlp="auto"` takes CoopVec (tensor cores) when the device
reports cooperative vectors and the loop path (weights inlined as constants) otherwise, saying so
once per device in the log; `mlp="coopvec"` on a device without the feature is a NeumatError.
slangpy's `cpu` device runs the CoopVec path through Slang's software fallback (row-major matrices).
`mlp="buffer"` runs shaders/neural/buffer_networks.slang, one module for any materials, on the
CoopVec path's row-major weight buffer: nothing to compile when the assets change.

`NeuralMaterial` implements the material query interface (renderer/materials/query.py):
evaluate, sample, pdf and albedo on batched arrays, plus `fetch_latents`. Query i uses the random
stream RNG.create(seed, i): its first number picks the latent level, the next three drive sample().
`run_queries` runs a query over a whole NeuralMaterialSet, each query on its own material.
"""

import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import slangpy as spy

from neumat.renderer.neural import codegen as codegen
from neumat.renderer.core.device import REPORTED_FEATURES
from neumat.renderer.core.device_state import device_state
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.kernels import COMPILE_STATS, compute_kernel
from neumat.renderer.materials.query import Material, dispatch_queries, query_records
from neumat.renderer.neural.asset import NeuralAsset, load_asset

log = logging.getLogger("neumat.neural")

MLP_PATHS = codegen.MLP_PATHS
RECORD_UINTS = 4 + 2 * codegen.MAX_LAYERS  # NeuralRecord
COOP_OFFSET_ALIGN = 64  # bytes: CoopVec matrix and bias offsets

_BUFFER_USAGE = spy.BufferUsage.shader_resource | spy.BufferUsage.unordered_access


def is_cpu_device(device: spy.Device) -> bool:
    return device.info.type == spy.DeviceType.cpu


def choose_mlp_path(device: spy.Device, mlp: str = "auto", what: str = "neural materials") -> str:
    """'coopvec', 'loop' or 'buffer' for `mlp` on `device`; NeumatError when 'coopvec' cannot run there."""
    if mlp not in MLP_PATHS:
        raise ValueError(f"mlp must be one of {MLP_PATHS}, got {mlp!r}")
    if mlp == "buffer":
        return "buffer"
    has = device.has_feature(REPORTED_FEATURES["cooperative_vector"])
    if mlp == "coopvec":
        if not (has or is_cpu_device(device)):
            raise NeumatError(f"{what}: the CoopVec MLP path needs the device feature 'cooperative_vector', which "
                              f"'{device.info.adapter_name}' does not offer; use the loop path (mlp='loop' or 'auto')")
        return "coopvec"
    if mlp == "loop" or not has:
        state = device_state(device, __name__)
        if mlp == "auto" and not state.get("fallback_said"):
            state["fallback_said"] = True
            log.info("'%s' has no cooperative vectors: neural materials use the loop MLP path (weights inlined "
                     "as constants)", device.info.adapter_name)
        return "loop"
    return "coopvec"


def _defines(device: spy.Device, mlp: str) -> dict[str, str]:
    coop = mlp == "coopvec"
    optimal = coop and not is_cpu_device(device)
    return {"NEURAL_COOPVEC": "1" if coop else "0", "NEURAL_COOPVEC_OPTIMAL": "1" if optimal else "0"}


def _latent_texels(asset: NeuralAsset) -> list[np.ndarray]:
    """Each level as [h * w, 4] uint32: a texel's 8 fp16 channels, channel 2k in the low half of k."""
    out = []
    for level in asset.latents_fp16:
        h, w, c = level.shape
        out.append(np.ascontiguousarray(level, dtype="<f2").reshape(h * w, c).view("<u4").reshape(h * w, c // 2))
    return out


def coop_weight_blob(device: spy.Device, assets: Sequence[NeuralAsset], layouts: Sequence[tuple], optimal: bool
                     ) -> tuple[np.ndarray, list[np.ndarray]]:
    """The CoopVec weight buffer of several materials and each one's (matrix, bias) byte offsets
    [2, MAX_LAYERS]. Matrices are zero-padded fp16, row-major or (optimal) converted by the device to
    its inferencing-optimal layout; biases fp16, zero-padded; every piece 64-byte aligned."""
    blob = bytearray()
    offsets = []

    def put(data: bytes) -> int:
        blob.extend(b"\0" * (-len(blob) % COOP_OFFSET_ALIGN))
        at = len(blob)
        blob.extend(data)
        return at

    for asset, layers in zip(assets, layouts):
        table = np.zeros((2, codegen.MAX_LAYERS), np.uint32)
        arrays = {name: asset.layer_arrays(name, "fp16") for name in asset.networks}
        for k, layer in enumerate(layers):
            w, b = arrays[layer.network][layer.index]
            m = np.zeros((layer.padded_rows, layer.padded_cols), "<f2")
            m[:layer.rows, :layer.cols] = w
            if optimal:
                src = device.create_coop_vec_matrix_desc(layer.padded_rows, layer.padded_cols,
                                                         spy.CoopVecMatrixLayout.row_major, spy.DataType.float16)
                dst = device.create_coop_vec_matrix_desc(layer.padded_rows, layer.padded_cols,
                                                         spy.CoopVecMatrixLayout.inferencing_optimal,
                                                         spy.DataType.float16)
                converted = bytearray(dst.size)
                device.convert_coop_vec_matrix(converted, dst, m.tobytes(), src)
                table[0, k] = put(bytes(converted))
            else:
                table[0, k] = put(m.tobytes())
            bias = np.zeros(layer.padded_rows, "<f2")
            if b is not None:
                bias[:layer.rows] = b
            table[1, k] = put(bias.tobytes())
        offsets.append(table)
    blob.extend(b"\0" * (-len(blob) % 16 or (16 if not blob else 0)))
    return np.frombuffer(bytes(blob), np.uint8).copy(), offsets


class NeuralMaterialSet:
    """Several neural materials packed into one NeuralMaterialSet binding, with the generated set
    module whose `switch` dispatches material id k (= the position in `materials`) to its networks."""

    def __init__(self, device: spy.Device, materials: Sequence["NeuralMaterial"], mlp: str | None = None):
        if not materials:
            raise ValueError("a neural material set needs at least one material")
        self.device = device
        self.materials = tuple(materials)
        paths = {m.mlp for m in self.materials}
        self.mlp = mlp or (paths.pop() if len(paths) == 1 else choose_mlp_path(device))
        if self.mlp == "coopvec":
            choose_mlp_path(device, "coopvec")
        if self.mlp == "buffer":
            for mat in self.materials:
                codegen.check_buffer_supported(mat.asset)
            self.module = codegen.buffer_module()
        elif len(self.materials) == 1 and mlp is None:
            self.module = self.materials[0].module
        else:
            self.module = codegen.generate_set([m.module for m in self.materials])
        texels, levels, records, offset = [], [], [], 0
        for mat in self.materials:
            record = np.zeros(RECORD_UINTS, np.uint32)
            record[0:4] = (len(levels), mat.asset.num_levels, *codegen.shape_words(mat.asset))
            records.append(record)
            for level, t in zip(mat.asset.latents_fp16, _latent_texels(mat.asset)):
                levels.append((level.shape[1], level.shape[0], offset, 0))
                texels.append(t)
                offset += t.shape[0]
        if offset >= 2**32:
            raise ValueError(f"a neural material set holds at most 2^32 texels, these materials need {offset}")
        if self.mlp in ("coopvec", "buffer"):
            blob, tables = coop_weight_blob(device, [m.asset for m in self.materials],
                                            [codegen.coop_layers(m.asset) for m in self.materials],
                                            optimal=self.mlp == "coopvec" and not is_cpu_device(device))
            for record, table in zip(records, tables):
                record[4:4 + codegen.MAX_LAYERS] = table[0]
                record[4 + codegen.MAX_LAYERS:] = table[1]
        else:
            blob = np.zeros(16, np.uint8)
        usage = spy.BufferUsage.shader_resource
        self.latents = device.create_buffer(data=np.concatenate(texels), struct_size=16, usage=usage,
                                            label="neural_latents")
        self.levels = device.create_buffer(data=np.asarray(levels, np.uint32), struct_size=16, usage=usage,
                                           label="neural_levels")
        self.records = device.create_buffer(data=np.stack(records), struct_size=4 * RECORD_UINTS, usage=usage,
                                            label="neural_records")
        self.weights = device.create_buffer(data=blob, usage=usage, label="neural_weights")
        self._ids: spy.Buffer | None = None

    def index(self, material: "NeuralMaterial") -> int:
        return self.materials.index(material)

    def uniform(self) -> dict:
        """The NeuralMaterialSet struct value."""
        return {"latents": self.latents, "levels": self.levels, "records": self.records, "weights": self.weights}

    def defines(self) -> dict[str, str]:
        return _defines(self.device, self.mlp)

    def kernel(self, kind: str) -> spy.ComputeKernel:
        """The compute kernel of a query kind ('evaluate', 'sample', 'pdf', 'latent', 'shade', or
        'stage<k>' for the benchmark's breakdown)."""
        warm = device_state(self.device, __name__).setdefault("warm_kernels", set())
        key = (str(self.module.kernels_path), kind, self.mlp)
        entry = (f"neuralStage{int(kind[5:])}Kernel" if kind.startswith("stage") else codegen.KERNEL_ENTRIES[kind])
        kernel = compute_kernel(self.device, str(self.module.kernels_path), entry, self.defines())
        if key not in warm:
            # Software drivers compile pipelines on first use: count that as compile time.
            start = time.perf_counter()
            buf = self.device.create_buffer(element_count=16, struct_size=4, usage=_BUFFER_USAGE)
            kernel.dispatch([1, 1, 1], vars={**self.bindings(buf, buf), "count": 0, "seed": 0, "firstIndex": 0})
            self.device.wait()
            COMPILE_STATS.seconds += time.perf_counter() - start
            warm.add(key)
        return kernel

    def bindings(self, queries: spy.Buffer, results: spy.Buffer, material_index: int = 0,
                 material_ids: spy.Buffer | None = None) -> dict:
        if material_ids is None:
            if self._ids is None:
                self._ids = self.device.create_buffer(element_count=4, struct_size=4,
                                                      usage=spy.BufferUsage.shader_resource)
            ids, per_query = self._ids, 0
        else:
            ids, per_query = material_ids, 1
        return {"materials": self.uniform(), "materialIndex": material_index, "perQueryMaterial": per_query,
                "materialIds": ids, "queries": queries, "results": results}


class NeuralMaterial(Material):
    """One neural asset on the device."""

    kind = "neural"

    def __init__(self, device: spy.Device, asset: NeuralAsset, mlp: str = "auto"):
        self.device = device
        self.asset = asset
        self.name = asset.name
        self.mlp = choose_mlp_path(device, mlp, what=asset.path.name)
        self.set = NeuralMaterialSet(device, [self])

    @functools.cached_property
    def module(self) -> codegen.GeneratedModule:
        """The asset's generated module (weights inlined), written on first use: the buffer path
        never needs it."""
        return codegen.generate_module(self.asset)

    @classmethod
    def from_asset(cls, device: spy.Device, path: str | Path, mlp: str = "auto",
                   expect_source_hash: str | None = None) -> "NeuralMaterial":
        """Loads, checks and uploads a `.neumat` asset; NeumatError names the asset on any problem."""
        return cls(device, load_asset(path, expect_source_hash=expect_source_hash), mlp=mlp)

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) of latent level 0."""
        return self.asset.latents_fp16[0].shape[:2]

    @property
    def num_levels(self) -> int:
        return self.asset.num_levels

    @property
    def evaluator(self) -> str:
        return self.asset.evaluator

    def query_kernel(self, query: str, n_walks: int | None = None):
        """`n_walks` is accepted for the reference's evaluate() and ignored: a neural eval is
        deterministic once the level is picked."""
        return self.set.kernel(query), self.set.bindings(None, None)

    def fetch_latents(self, uv, lod, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The latent each query's instance decodes [N, 8] and the level it picked [N] (int)."""
        out = run_queries(self.set, "latent", 9, query_records(uv, None, None, lod), seed)
        return out[:, :8], out[:, 8].astype(np.int64)


# --- batched queries ------------------------------------------------------------------------------

def run_queries(mset: "NeuralMaterialSet", kind: str, out_width: int, queries: np.ndarray, seed: int = 0,
                material_ids: np.ndarray | None = None) -> np.ndarray:
    """Runs one query kernel of a set over `queries` [N, 9] (materials/query.py query_records);
    `material_ids` [N] picks each query's material (default: material 0). Returns [N, out_width]."""
    if not isinstance(mset, NeuralMaterialSet):
        raise TypeError(f"expected a NeuralMaterialSet, got {type(mset).__name__}")
    n = queries.shape[0]
    ids_buf = None
    if material_ids is not None:
        ids = np.ascontiguousarray(material_ids, dtype=np.uint32)
        if ids.shape != (n,) or (n and int(ids.max()) >= len(mset.materials)):
            raise ValueError(f"material_ids must be [{n}] indices below {len(mset.materials)}")
        ids_buf = mset.device.create_buffer(data=ids, struct_size=4, usage=spy.BufferUsage.shader_resource)
    return dispatch_queries(mset.device, mset.kernel(kind), mset.bindings(None, None, 0, ids_buf), queries,
                            out_width, seed)
