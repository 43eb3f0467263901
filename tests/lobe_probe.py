"""Test support: runs the analytic lobes of shaders/materials/lobes.slang on batches of directions
through tests/shaders/lobe_probe.slang, which lives outside shaders/ because only tests use it."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slangpy as spy

from neumat.renderer.core.paths import SHADER_DIR, cache_dir

TEST_SHADER_DIR = Path(__file__).resolve().parent / "shaders"
PROBE_MODULE = "lobe_probe.slang"

# ILobe sample/pdf modes (materials/lobe.slang).
REFLECTION, TRANSMISSION, ALL = 1, 2, 3


@dataclass(frozen=True)
class LobeSpec:
    """A lobe and its parameters as the probe kernel reads them (see lobe_probe.slang)."""

    type: int
    p0: tuple = (0.0, 0.0, 0.0, 0.0)
    p1: tuple = (0.0, 0.0, 0.0, 0.0)
    p2: tuple = (0.0, 0.0, 0.0, 0.0)
    label: str = ""

    def uniform(self) -> dict:
        return {"type": self.type, "p0": spy.float4(*self.p0), "p1": spy.float4(*self.p1),
                "p2": spy.float4(*self.p2)}


def _rgb(v) -> tuple:
    v = np.broadcast_to(np.asarray(v, dtype=float), (3,))
    return (float(v[0]), float(v[1]), float(v[2]), 0.0)


def diffuse(albedo) -> LobeSpec:
    return LobeSpec(0, _rgb(albedo), label="diffuse")


def conductor(eta, k, alpha_u: float, alpha_v: float) -> LobeSpec:
    return LobeSpec(1, _rgb(eta), _rgb(k), (alpha_u, alpha_v, 0.0, 0.0),
                    label=f"conductor(au={alpha_u},av={alpha_v})")


def conductor_artist(f0, edge_tint, alpha_u: float, alpha_v: float) -> LobeSpec:
    return LobeSpec(2, _rgb(f0), _rgb(edge_tint), (alpha_u, alpha_v, 0.0, 0.0),
                    label=f"conductor_artist(au={alpha_u},av={alpha_v})")


def dielectric(eta: float, alpha: float) -> LobeSpec:
    return LobeSpec(3, (eta, alpha, 0.0, 0.0), label=f"dielectric(eta={eta},alpha={alpha})")


def sheen(color, alpha: float) -> LobeSpec:
    return LobeSpec(4, _rgb(color), (alpha, 0.0, 0.0, 0.0), label=f"sheen(alpha={alpha})")


def _vec4(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32).reshape(-1, 3)
    return np.ascontiguousarray(np.concatenate([a, np.zeros((len(a), 1), np.float32)], axis=1))


class LobeProbe:
    """Batched access to the lobes on `device`, through a Slang session that also sees tests/shaders."""

    def __init__(self, device: spy.Device):
        self.device = device
        options = spy.SlangCompilerOptions({"include_paths": [str(SHADER_DIR), str(TEST_SHADER_DIR)]})
        cache = cache_dir() / "shaders" / "test-probe"
        cache.mkdir(parents=True, exist_ok=True)
        session = device.create_slang_session(compiler_options=options, cache_path=str(cache))
        self._kernels = {}
        for entry in ("probeEval", "probeSample", "probeFresnel"):
            program = session.load_program(PROBE_MODULE, [entry])
            self._kernels[entry] = device.create_compute_kernel(program)

    def _in(self, a: np.ndarray) -> spy.Buffer:
        return self.device.create_buffer(data=a, usage=spy.BufferUsage.shader_resource)

    def _out(self, n: int) -> spy.Buffer:
        return self.device.create_buffer(element_count=max(n, 1), struct_size=16,
                                         usage=spy.BufferUsage.unordered_access | spy.BufferUsage.shader_resource)

    @staticmethod
    def _read(buf: spy.Buffer, n: int) -> np.ndarray:
        return buf.to_numpy().view(np.float32).reshape(-1, 4)[:n]

    def eval_pdf(self, lobe: LobeSpec, wi: np.ndarray, wo: np.ndarray, mode: int = ALL
                 ) -> tuple[np.ndarray, np.ndarray]:
        """eval(wi, wo) (N, 3) and pdf(wi, wo, mode) (N,) for direction pairs (N, 3)."""
        wi4, wo4 = _vec4(wi), _vec4(wo)
        n = len(wi4)
        res = self._out(n)
        self._kernels["probeEval"].dispatch(thread_count=[n, 1, 1], count=n, mode=mode, lobe=lobe.uniform(),
                                            wis=self._in(wi4), wos=self._in(wo4), result=res)
        r = self._read(res, n)
        return r[:, :3].astype(np.float64), r[:, 3].astype(np.float64)

    def sample(self, lobe: LobeSpec, wi: np.ndarray, samples_per_wi: int, seed: int = 1, mode: int = ALL
               ) -> dict[str, np.ndarray]:
        """samples_per_wi samples for each wi (M, 3); arrays shaped (M, samples_per_wi, ...).

        Keys: wo, pdf, weight, delta (the BSDFSample), eval and pdf_eval (eval(wi, wo) and
        pdf(wi, wo, mode) recomputed at the sampled wo; 0 for failed samples)."""
        wi4 = _vec4(wi)
        m = len(wi4)
        n = m * samples_per_wi
        o0, o1, o2 = self._out(n), self._out(n), self._out(n)
        self._kernels["probeSample"].dispatch(thread_count=[n, 1, 1], count=n, samplesPerWi=samples_per_wi,
                                              seed=seed, mode=mode, lobe=lobe.uniform(), wis=self._in(wi4),
                                              out0=o0, out1=o1, out2=o2)
        a0, a1, a2 = (self._read(b, n).astype(np.float64).reshape(m, samples_per_wi, 4) for b in (o0, o1, o2))
        return {"wo": a0[..., :3], "pdf": a0[..., 3], "weight": a1[..., :3], "delta": a1[..., 3] > 0.5,
                "eval": a2[..., :3], "pdf_eval": a2[..., 3]}

    def fresnel(self, cos_theta: np.ndarray, eta: np.ndarray, cond_eta=(1, 1, 1), cond_k=(0, 0, 0),
                ) -> dict[str, np.ndarray]:
        """Dielectric F and cosThetaT at (cos_theta, eta) pairs, conductor F with complex IOR
        cond_eta + i cond_k at cos_theta, and the artist mapping of (cond_eta, cond_k) read as
        (f0, edge tint)."""
        rows = np.zeros((len(cos_theta), 4), np.float32)
        rows[:, 0], rows[:, 1] = cos_theta, eta
        n = len(rows)
        o0, o1, o2 = self._out(n), self._out(n), self._out(max(n, 2))
        self._kernels["probeFresnel"].dispatch(thread_count=[n, 1, 1], count=n, p0=spy.float4(*_rgb(cond_eta)),
                                               p1=spy.float4(*_rgb(cond_k)), rows=self._in(rows),
                                               out0=o0, out1=o1, out2=o2)
        a0, a1, a2 = self._read(o0, n), self._read(o1, n), self._read(o2, 2)
        return {"dielectric": a0[:, 0].astype(np.float64), "cos_t": a0[:, 1].astype(np.float64),
                "conductor": a1[:, :3].astype(np.float64),
                "artist_eta": a2[0, :3].astype(np.float64), "artist_k": a2[1, :3].astype(np.float64)}
