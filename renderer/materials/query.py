"""The material query interface: what every device material answers on batched numpy arrays,
whatever it is made of (as Mitsuba's BSDF and pbrt's Material interfaces give reference and other
materials one face).

`Material` is implemented by the reference layered material (materials/reference.py) and the
neural material (neural/material.py): `evaluate`, `sample`, `pdf` and `albedo` take arrays of any
length, run one compute kernel over them in chunks of at most CHUNK queries (device memory stays
bounded) and return numpy arrays. Query i draws its random numbers from RNG.create(seed, i), so
results do not depend on the chunking. Directions are in the shading frame (z = normal); `uv` is
[N, 2], `wi`/`wo` [N, 3], `lod` a scalar or [N] (latent/parameter level, fractional).

The Slang side is IMaterial / IMaterialInstance (shaders/materials/material.slang); the query
kernels read QUERY_STRIDE floats per query: u, v, lod, wi.xyz, wo.xyz."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import numpy as np

if TYPE_CHECKING:  # slangpy loads only when a query runs: `neumat --help` and scene parsing stay light
    import slangpy as spy

MATERIAL_KINDS = ("reference", "neural")  # what a scene object's material can be shown as
QUERY_STRIDE = 9   # u, v, lod, wi.xyz, wo.xyz per query
CHUNK = 1 << 20    # queries per dispatch
QUERY_WIDTHS = {"evaluate": 3, "sample": 7, "pdf": 1, "albedo": 3}  # floats per result


def query_records(uv, wi=None, wo=None, lod=0.0) -> np.ndarray:
    """The [N, QUERY_STRIDE] float32 query records, after checking every array's shape."""
    uv = np.asarray(uv, dtype=np.float32)
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValueError(f"uv must have shape [N, 2], got {uv.shape}")
    n = uv.shape[0]
    q = np.zeros((n, QUERY_STRIDE), np.float32)
    q[:, 0:2] = uv
    for name, a, column in (("wi", wi, 3), ("wo", wo, 6)):
        if a is None:
            continue
        a = np.asarray(a)
        if a.shape != (n, 3):
            raise ValueError(f"{name} must have shape [{n}, 3], got {a.shape}")
        q[:, column:column + 3] = a
    lod = np.asarray(lod, dtype=np.float32)
    if lod.ndim != 0 and lod.shape != (n,):
        raise ValueError(f"lod must be a scalar or have shape [{n}], got {lod.shape}")
    q[:, 2] = lod
    return q


def dispatch_queries(device: spy.Device, kernel: spy.ComputeKernel, bindings: dict, queries: np.ndarray,
                     out_width: int, seed: int = 0) -> np.ndarray:
    """Runs `kernel` over the query records in chunks; the kernel reads `queries`, `count`, `seed`
    and `firstIndex` and writes `out_width` floats per query to `results`. Returns [N, out_width]."""
    import slangpy as spy

    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must fit in 32 bits, got {seed}")
    n = queries.shape[0]
    out = np.empty((n, out_width), np.float32)
    if n == 0:
        return out
    chunk = min(n, CHUNK)
    query_buf = device.create_buffer(element_count=chunk * QUERY_STRIDE, struct_size=4,
                                     usage=spy.BufferUsage.shader_resource)
    result_buf = device.create_buffer(element_count=chunk * out_width, struct_size=4, usage=spy.BufferUsage.shader_resource | spy.BufferUsage.unordered_access)
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        block = queries[start:start + count]
        if count < chunk:  # the last, partial chunk: pad so the upload fills the buffer
            block = np.concatenate([block, np.zeros((chunk - count, QUERY_STRIDE), np.float32)])
        query_buf.copy_from_numpy(np.ascontiguousarray(block, dtype=np.float32).ravel())
        kernel.dispatch([count, 1, 1], vars={**bindings, "queries": query_buf, "results": result_buf,
                                             "count": count, "seed": seed, "firstIndex": start})
        out[start:start + count] = result_buf.to_numpy().view(np.float32)[:count * out_width].reshape(count, out_width)
    return out


class Material(ABC):
    """A material on the device, queried in batches. Subclasses say which kernel answers a query
    (`query_kernel`); the arrays, the chunking and the result layout are the same for all."""

    kind: ClassVar[str]  # one of MATERIAL_KINDS
    device: spy.Device
    name: str

    @abstractmethod
    def query_kernel(self, query: str, **settings) -> tuple[spy.ComputeKernel, dict]:
        """The kernel for `query` (a QUERY_WIDTHS key) and its bindings besides the query buffers.
        `settings` are the material's own per-call options (the reference's walk settings)."""

    def run(self, query: str, records: np.ndarray, seed: int = 0, **settings) -> np.ndarray:
        kernel, bindings = self.query_kernel(query, **settings)
        return dispatch_queries(self.device, kernel, bindings, records, QUERY_WIDTHS[query], seed)

    def evaluate(self, uv, wi, wo, lod, seed: int = 0, **settings) -> np.ndarray:
        """eval(wi, wo) = f * |cos theta_o| per query, [N, 3]. A stochastic material (the reference)
        returns an unbiased estimate; `settings` choose how it is made."""
        return self.run("evaluate", query_records(uv, wi, wo, lod), seed, **settings)

    def sample(self, uv, wi, lod, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One sample per query: wo [N, 3], weight [N, 3] (an estimate of eval / pdf) and pdf [N]
        (0 marks a failed sample)."""
        out = self.run("sample", query_records(uv, wi, None, lod), seed)
        return out[:, :3], out[:, 3:6], out[:, 6]

    def pdf(self, uv, wi, wo, lod, seed: int = 0) -> np.ndarray:
        """The density of sample() at wo (solid angle), [N]."""
        return self.run("pdf", query_records(uv, wi, wo, lod), seed)[:, 0]

    def albedo(self, uv, lod, seed: int = 0) -> np.ndarray:
        """The cheap albedo the path tracer writes to its albedo AOV (the denoiser's guide), [N, 3]."""
        return self.run("albedo", query_records(uv, None, None, lod), seed)
