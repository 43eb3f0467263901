"""Compute kernels loaded once per device, with their compile time recorded for reports."""

import time
from dataclasses import dataclass

import slangpy as spy

from neumat.renderer.core.errors import NeumatError


@dataclass
class CompileStats:
    """Seconds spent loading Slang programs in this process (cache hits included)."""

    seconds: float = 0.0
    programs: int = 0


COMPILE_STATS = CompileStats()
_kernels: dict[tuple[int, str, str, tuple], spy.ComputeKernel] = {}


def compute_kernel(device: spy.Device, module: str, entry: str, defines: dict[str, str] | None = None
                   ) -> spy.ComputeKernel:
    """The compute kernel `entry` of `module` (a path under shaders/), compiled once per device.

    `defines` are preprocessor macros (compile-time switches such as the MLP path); each distinct
    set is its own kernel.
    """
    key = (id(device), module, entry, tuple(sorted((defines or {}).items())))
    if key not in _kernels:
        start = time.perf_counter()
        try:
            session = device.slang_session
            if defines:
                options = spy.SlangCompilerOptions({"include_paths": [str(p) for p in session.desc.compiler_options.include_paths],
                                                    "defines": dict(defines)})
                session = device.create_slang_session(compiler_options=options)
            program = session.load_program(module, [entry])
            _kernels[key] = device.create_compute_kernel(program)
        except RuntimeError as exc:
            raise NeumatError(f"Slang compilation of {module}:{entry} failed:\n{exc}") from exc
        COMPILE_STATS.seconds += time.perf_counter() - start
        COMPILE_STATS.programs += 1
    return _kernels[key]
