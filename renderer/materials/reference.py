"""Reference layered materials on the device, and the batched queries training runs on them.

A `ReferenceMaterial` uploads one material's parameter pyramid (level 0 finest, [H, W, K] float32
per level) and its StackLayout. On the device every kernel binds a `ReferenceMaterialSet`
(shaders/materials/layered.slang): one texel buffer (float4s; each texel's K floats padded to a
multiple of 4) and one level table shared by all materials of the set, one record per material
(layer types and offsets, first level, level count, K), the sheen albedo table and the walk
settings. A `MaterialSet` packs several materials for a path tracer; a `ReferenceMaterial` owns a
set of one.

`ReferenceMaterial` implements the material query interface (materials/query.py): evaluate,
sample, pdf and albedo on batched arrays, plus `fetch_parameters` (the filtered parameter vector).
Its evaluate takes the walk settings per call (`n_walks=`, `walk=`).
"""

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import slangpy as spy

from neumat.renderer.core.device_state import device_state
from neumat.renderer.core.kernels import compute_kernel
from neumat.renderer.materials.layout import BOTTOM_TYPES, LAYER_TYPES, MAX_LAYERS, StackLayout
from neumat.renderer.materials.query import Material, dispatch_queries, query_records

QUERY_MODULE = "materials/reference_queries.slang"
QUERY_ENTRIES = {"evaluate": "evaluateKernel", "sample": "sampleKernel", "pdf": "pdfKernel", "albedo": "albedoKernel",
                 "fetch": "fetchKernel"}
SHEEN_TABLE_SIZE = 32  # layered.slang SHEEN_TABLE_SIZE
RECORD_UINTS = 1 + 2 * MAX_LAYERS + 3  # layered.slang MaterialRecord: LayerStack + 3 uints

TERM_TOP, TERM_CONNECT, TERM_FOLLOW = 1, 2, 4  # layered.slang TERM_*
TERM_ALL = TERM_TOP | TERM_CONNECT | TERM_FOLLOW

_BUFFER_USAGE = spy.BufferUsage.shader_resource | spy.BufferUsage.unordered_access


@dataclass(frozen=True)
class WalkSettings:
    """The random walk's controls (layered.slang WalkSettings)."""

    n_walks: int = 1         # walks averaged by one eval()
    max_depth: int = 32      # scattering vertices per walk after entering the top
    roulette_depth: int = 3  # Russian roulette once a walk is this many vertices past the entry
    terms: int = TERM_ALL    # eval()'s terms (layered.slang TERM_*); fewer only to measure them apart
    plain: bool = False      # the plain estimator (presence drawn per walk, no stratification): the tests' reference

    def __post_init__(self) -> None:
        if self.n_walks < 1 or self.max_depth < 1 or self.roulette_depth < 0 or not 0 < self.terms <= TERM_ALL:
            raise ValueError(f"invalid walk settings {self}")

    def uniform(self) -> dict:
        return {"nWalks": self.n_walks, "maxDepth": self.max_depth, "rouletteDepth": self.roulette_depth,
                "terms": self.terms, "plainWalks": int(self.plain)}


def sheen_albedo_table(device: spy.Device) -> spy.Buffer:
    """SheenLobe's directional albedo on layered.slang's sheenTableNode grid, built once per device."""
    state = device_state(device, __name__)
    if "sheen_table" not in state:
        n = SHEEN_TABLE_SIZE * SHEEN_TABLE_SIZE
        table = device.create_buffer(element_count=n, struct_size=4, usage=_BUFFER_USAGE, label="sheen_albedo")
        compute_kernel(device, QUERY_MODULE, "tabulateSheenAlbedo").dispatch([n, 1, 1], vars={"results": table})
        state["sheen_table"] = table
    return state["sheen_table"]


def _check_pyramid(layout: StackLayout, pyramid: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    if not pyramid:
        raise ValueError("a parameter pyramid needs at least one level")
    levels = []
    for i, level in enumerate(pyramid):
        level = np.ascontiguousarray(level, dtype=np.float32)
        if level.ndim != 3 or level.shape[2] != layout.width or min(level.shape[:2]) < 1:
            raise ValueError(f"pyramid level {i} has shape {level.shape}; expected [H, W, {layout.width}] "
                             f"for layers {layout.layer_types}")
        if i and (level.shape[0] > levels[-1].shape[0] or level.shape[1] > levels[-1].shape[1]):
            raise ValueError(f"pyramid level {i} {level.shape[:2]} is larger than level {i - 1} "
                             f"{levels[-1].shape[:2]}; level 0 must be the finest")
        levels.append(level)
    return tuple(levels)


class ReferenceMaterial(Material):
    """One layered material's parameters on the device."""

    kind = "reference"

    def __init__(self, device: spy.Device, layout: StackLayout, pyramid: Sequence[np.ndarray],
                 name: str = "material", walk: WalkSettings = WalkSettings()):
        if layout.layer_types[0] not in BOTTOM_TYPES:
            raise ValueError(f"the bottom layer must be one of {BOTTOM_TYPES} (opaque), got '{layout.layer_types[0]}'")
        self.device = device
        self.layout = layout
        self.pyramid = _check_pyramid(layout, pyramid)
        self.name = name
        self.walk = walk
        self.set = MaterialSet(device, [self], walk)

    @classmethod
    def from_file(cls, device: spy.Device, path: str | Path, resolution: int | None = None,
                  walk: WalkSettings = WalkSettings()) -> "ReferenceMaterial":
        """Loads a material graph, evaluates it at `resolution` (default: the file's) and uploads
        its prefiltered pyramid."""
        from neumat.renderer.materials.graph import build_pyramid, evaluate_parameters, load_material

        material = load_material(path)
        params = evaluate_parameters(material, resolution or material.resolution)
        return cls(device, material.layout, build_pyramid(material, params), name=material.name, walk=walk)

    @property
    def width(self) -> int:
        """K: floats per texel."""
        return self.layout.width

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) of level 0."""
        return self.pyramid[0].shape[:2]

    def uniforms(self, walk: WalkSettings | None = None) -> dict:
        """Values for a kernel that declares `uniform ReferenceMaterialSet materials;` and
        `uniform uint materialIndex;` (as reference_queries.slang does)."""
        return {"materials": self.set.uniform(walk), "materialIndex": 0}

    def query_kernel(self, query: str, n_walks: int | None = None, walk: WalkSettings | None = None):
        """evaluate() averages `n_walks` random walks (default: the walk settings', which default to
        the material's `walk`)."""
        walk = walk or self.walk
        if n_walks is not None:
            walk = replace(walk, n_walks=n_walks)
        return compute_kernel(self.device, QUERY_MODULE, QUERY_ENTRIES[query]), self.uniforms(walk)

    def fetch_parameters(self, uv, lod) -> np.ndarray:
        """The filtered per-texel parameter vector at (uv, lod) as the BSDF sees it, [N, K]."""
        kernel, bindings = self.query_kernel("fetch")
        return dispatch_queries(self.device, kernel, bindings, query_records(uv, None, None, lod), self.width)


class MaterialSet:
    """Several reference materials packed into one ReferenceMaterialSet binding."""

    def __init__(self, device: spy.Device, materials: Sequence[ReferenceMaterial],
                 walk: WalkSettings = WalkSettings()):
        if not materials:
            raise ValueError("a material set needs at least one material")
        self.materials = tuple(materials)
        self.walk = walk
        texels, levels, records, offset = [], [], [], 0
        for mat in self.materials:
            record = np.zeros(RECORD_UINTS, np.uint32)
            record[0] = len(mat.layout.layer_types)
            for i, (name, off) in enumerate(zip(mat.layout.layer_types, mat.layout.offsets)):
                record[1 + i] = LAYER_TYPES[name].type_id
                record[1 + MAX_LAYERS + i] = off
            record[1 + 2 * MAX_LAYERS:] = (len(levels), len(mat.pyramid), mat.width)
            records.append(record)
            stride = -(-mat.width // 4)  # float4s per texel: K padded to a multiple of 4
            for level in mat.pyramid:
                levels.append((level.shape[1], level.shape[0], offset, 0))
                padded = np.zeros(level.shape[:2] + (4 * stride,), np.float32)
                padded[..., :mat.width] = level
                texels.append(padded.ravel())
                offset += padded.size // 4
        if offset >= 2**32:
            raise ValueError(f"a material set holds at most 2^32 float4s, these materials need {offset}")
        self.texels = device.create_buffer(data=np.concatenate(texels), struct_size=16,
                                           usage=spy.BufferUsage.shader_resource, label="material_texels")
        self.levels = device.create_buffer(data=np.asarray(levels, np.uint32), struct_size=16,
                                           usage=spy.BufferUsage.shader_resource, label="material_levels")
        self.records = device.create_buffer(data=np.stack(records), struct_size=4 * RECORD_UINTS,
                                            usage=spy.BufferUsage.shader_resource, label="material_records")
        self.sheen_table = sheen_albedo_table(device)

    def index(self, material: ReferenceMaterial) -> int:
        return self.materials.index(material)

    def uniform(self, walk: WalkSettings | None = None) -> dict:
        """The ReferenceMaterialSet struct value."""
        return {"texels": self.texels, "levels": self.levels, "records": self.records,
                "sheenAlbedo": self.sheen_table, "walk": (walk or self.walk).uniform()}
