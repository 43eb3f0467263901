"""The one way neumat gets a GPU: a ready slangpy Vulkan device on the best adapter.

Adapter preference is NVIDIA GPU > any other GPU > lavapipe (Mesa's software Vulkan, which is what
machines without a GPU and the test suite run on). `--device` flags and $NEUMAT_DEVICE force a
choice. Every device gets `shaders/` on its include path and an on-disk module and pipeline cache,
so a second process does not recompile unchanged Slang code.
"""

import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import slangpy as spy

from neumat.renderer.core.device_state import device_state
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.paths import SHADER_DIR, cache_dir
from neumat.renderer.core.vulkan_info import PhysicalDeviceInfo, query_physical_devices

NVIDIA_VENDOR_ID = 0x10DE
MESA_VENDOR_ID = 0x10005  # lavapipe/llvmpipe report Mesa's vendor id
DEVICE_ENV = "NEUMAT_DEVICE"
DEVICE_CHOICES = ("auto", "nvidia", "gpu", "lavapipe")
_SOFTWARE_ALIASES = {"lavapipe", "llvmpipe", "cpu", "software"}

# Features the renderer cares about, in the order reports print them.
REPORTED_FEATURES = {
    "ray_tracing": spy.Feature.ray_tracing,
    "ray_query": spy.Feature.ray_query,
    "acceleration_structure": spy.Feature.acceleration_structure,
    "cooperative_vector": spy.Feature.cooperative_vector,
    "half": spy.Feature.half,
}

INSTALL_HINT = (
    "neumat needs a Vulkan 1.3 driver. Without a GPU, install Mesa >= 25 lavapipe from Debian's "
    "bookworm-backports suite: add 'bookworm-backports' (component main) to apt's sources, run "
    "'apt-get update', then 'apt-get install -t bookworm-backports mesa-vulkan-drivers' "
    "(tools/install.sh does all of this). Debian 12's own Mesa 22.3 is too old: it lacks "
    "VK_KHR_shader_non_semantic_info. With an NVIDIA GPU, install the NVIDIA driver."
)


def is_software_adapter(name: str, vendor_id: int) -> bool:
    return vendor_id == MESA_VENDOR_ID and any(s in name.lower() for s in ("llvmpipe", "lavapipe"))


def _rank(adapter: spy.AdapterInfo) -> int:
    if adapter.vendor_id == NVIDIA_VENDOR_ID:
        return 0
    return 2 if is_software_adapter(adapter.name, adapter.vendor_id) else 1


def select_adapter(adapters: list[spy.AdapterInfo], choice: str | None) -> spy.AdapterInfo:
    """Picks the adapter for `choice`: auto/nvidia/gpu/lavapipe, an index, or part of a name."""
    if not adapters:
        raise NeumatError(f"No Vulkan adapter found. {INSTALL_HINT}")
    choice = (choice or "auto").strip().lower()
    listing = ", ".join(f"[{i}] {a.name}" for i, a in enumerate(adapters))
    if choice == "auto":
        return min(adapters, key=_rank)
    if choice in _SOFTWARE_ALIASES:
        matches = [a for a in adapters if _rank(a) == 2]
    elif choice == "nvidia":
        matches = [a for a in adapters if _rank(a) == 0]
    elif choice == "gpu":
        matches = sorted((a for a in adapters if _rank(a) < 2), key=_rank)
    elif choice.isdigit():
        matches = [adapters[int(choice)]] if int(choice) < len(adapters) else []
    else:
        matches = [a for a in adapters if choice in a.name.lower()]
    if not matches:
        raise NeumatError(
            f"No Vulkan adapter matches device '{choice}' (from --device or ${DEVICE_ENV}). "
            f"Available: {listing}. Use one of {', '.join(DEVICE_CHOICES)}, an index or part of a name."
        )
    return matches[0]


def _cache_paths(adapter_name: str) -> tuple[Path, Path]:
    slug = re.sub(r"[^a-z0-9]+", "-", adapter_name.lower()).strip("-")[:48] or "adapter"
    root = cache_dir() / "shaders" / slug
    return root / "modules", root / "pipelines"


@dataclass
class DeviceReport:
    """What `neumat sysinfo` prints and what tests check features against."""

    adapter: str
    kind: str  # "NVIDIA GPU", "GPU" or "software (lavapipe)"
    api: str
    vulkan_version: str
    driver: str
    features: dict[str, bool] = field(default_factory=dict)
    module_cache: str = ""
    pipeline_cache: str = ""

    def lines(self) -> list[str]:
        feats = ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in self.features.items())
        return [
            f"adapter:        {self.adapter} ({self.kind})",
            f"api:            {self.api} {self.vulkan_version}",
            f"driver:         {self.driver}",
            f"features:       {feats}",
            f"shader cache:   {self.module_cache} (modules), {self.pipeline_cache} (pipelines)",
        ]


def _physical_info(name: str) -> PhysicalDeviceInfo | None:
    return next((p for p in query_physical_devices() if p.name == name), None)


def is_software_device(device: spy.Device) -> bool:
    """Whether `device` runs on lavapipe (software Vulkan): dispatch sizes and defaults follow it."""
    state = device_state(device, __name__)
    if "software" not in state:
        phys = _physical_info(device.info.adapter_name)
        state["software"] = is_software_adapter(device.info.adapter_name, phys.vendor_id if phys else MESA_VENDOR_ID)
    return state["software"]


def device_report(device: spy.Device) -> DeviceReport:
    name = device.info.adapter_name
    phys = _physical_info(name)
    vendor = phys.vendor_id if phys else 0
    if vendor == NVIDIA_VENDOR_ID:
        kind = "NVIDIA GPU"
    elif is_software_device(device):
        kind = "software (lavapipe)"
    else:
        kind = "GPU"
    modules, pipelines = _cache_paths(name)
    return DeviceReport(
        adapter=name,
        kind=kind,
        api=device.info.api_name,
        vulkan_version=phys.api_version if phys else "unknown",
        driver=f"{phys.driver_name}: {phys.driver_info}" if phys else "unknown",
        features={k: device.has_feature(f) for k, f in REPORTED_FEATURES.items()},
        module_cache=str(modules),
        pipeline_cache=str(pipelines),
    )


@lru_cache(maxsize=None)
def _create(choice: str, hot_reload: bool) -> spy.Device:
    try:
        adapters = list(spy.Device.enumerate_adapters(spy.DeviceType.vulkan))
    except Exception as exc:  # the loader itself is missing or broken
        raise NeumatError(f"Cannot enumerate Vulkan adapters ({exc}). {INSTALL_HINT}") from exc
    adapter = select_adapter(adapters, choice)
    modules, pipelines = _cache_paths(adapter.name)
    modules.mkdir(parents=True, exist_ok=True)
    pipelines.mkdir(parents=True, exist_ok=True)
    try:
        return spy.Device(
            type=spy.DeviceType.vulkan,
            adapter_luid=adapter.luid,
            enable_hot_reload=hot_reload,
            compiler_options=spy.SlangCompilerOptions({"include_paths": [str(SHADER_DIR)]}),
            module_cache_path=str(modules),
            shader_cache_path=str(pipelines),
            label="neumat",
        )
    except Exception as exc:
        raise NeumatError(f"Cannot create a Vulkan device on '{adapter.name}': {exc}. {INSTALL_HINT}") from exc


def create_device(choice: str | None = None, hot_reload: bool = False) -> spy.Device:
    """The shared device for `choice` (see `select_adapter`; default $NEUMAT_DEVICE, else auto):
    one per process and normalised choice, so every caller shares its compiled kernels."""
    return _create((choice or os.environ.get(DEVICE_ENV) or "auto").strip().lower(), hot_reload)


def require_feature(device: spy.Device, feature: str, purpose: str) -> None:
    """Raises one clear error when `device` lacks `feature` (a key of REPORTED_FEATURES)."""
    if not device.has_feature(REPORTED_FEATURES[feature]):
        raise NeumatError(f"{purpose} needs the Vulkan feature '{feature}', which "
                          f"'{device.info.adapter_name}' does not offer.")
