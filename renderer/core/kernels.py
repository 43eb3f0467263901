"""Compute kernels loaded once per device, with their compile time recorded for reports."""

import time
from dataclasses import dataclass

import slangpy as spy

from neumat.renderer.core.device_state import device_state
from neumat.renderer.core.errors import NeumatError


@dataclass
class CompileStats:
    """Seconds spent loading Slang programs in this process (cache hits included)."""

    seconds: float = 0.0
    programs: int = 0


COMPILE_STATS = CompileStats()


def slang_session(device: spy.Device, defines: dict[str, str] | None = None, include_dirs=()) -> spy.SlangSession:
    """The device's Slang session (include path: shaders/), or a new one with extra `defines` and
    `include_dirs` (generated neural modules) when given."""
    session = device.slang_session
    if not defines and not include_dirs:
        return session
    includes = [str(p) for p in session.desc.compiler_options.include_paths] + [str(d) for d in include_dirs]
    options = spy.SlangCompilerOptions({"include_paths": includes, "defines": dict(defines or {})})
    return device.create_slang_session(compiler_options=options)


def load_program(device: spy.Device, module: str, entries: list[str], defines: dict[str, str] | None = None,
                 include_dirs=(), what: str = "") -> spy.ShaderProgram:
    """Compiles `entries` of `module` (a path under shaders/ or an include dir); a compile error
    becomes one NeumatError naming the module (and `what`, e.g. the neural set)."""
    try:
        return slang_session(device, defines, include_dirs).load_program(module, entries)
    except Exception as exc:  # slangpy raises SlangCompileError and RuntimeError
        raise NeumatError(f"Slang compilation of {module}{what} failed:\n{exc}") from exc


def compute_kernel(device: spy.Device, module: str, entry: str, defines: dict[str, str] | None = None
                   ) -> spy.ComputeKernel:
    """The compute kernel `entry` of `module` (a path under shaders/), compiled once per device.

    `defines` are preprocessor macros (compile-time switches such as the MLP path); each distinct
    set is its own kernel.
    """
    kernels = device_state(device, __name__)
    key = (module, entry, tuple(sorted((defines or {}).items())))
    if key not in kernels:
        start = time.perf_counter()
        program = load_program(device, module, [entry], defines, what=f":{entry}")
        try:
            kernels[key] = device.create_compute_kernel(program)
        except Exception as exc:
            raise NeumatError(f"Slang compilation of {module}:{entry} failed:\n{exc}") from exc
        COMPILE_STATS.seconds += time.perf_counter() - start
        COMPILE_STATS.programs += 1
    return kernels[key]
