"""The device layer: adapter choice, the feature report, clear errors and the on-disk shader cache."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from neumat.renderer.core.device import MESA_VENDOR_ID, NVIDIA_VENDOR_ID, device_report, select_adapter
from neumat.renderer.core.errors import NeumatError

LAVAPIPE = SimpleNamespace(name="llvmpipe (LLVM 15.0.6, 256 bits)", vendor_id=MESA_VENDOR_ID)
AMD = SimpleNamespace(name="AMD Radeon RX 7900", vendor_id=0x1002)
NVIDIA = SimpleNamespace(name="NVIDIA GeForce RTX 4090", vendor_id=NVIDIA_VENDOR_ID)


@pytest.mark.parametrize("adapters, choice, expected", [
    ([LAVAPIPE, AMD, NVIDIA], None, NVIDIA),
    ([LAVAPIPE, AMD], "auto", AMD),
    ([LAVAPIPE], None, LAVAPIPE),
    ([NVIDIA, LAVAPIPE], "lavapipe", LAVAPIPE),
    ([NVIDIA, LAVAPIPE], "cpu", LAVAPIPE),
    ([LAVAPIPE, AMD, NVIDIA], "gpu", NVIDIA),
    ([LAVAPIPE, AMD], "gpu", AMD),
    ([LAVAPIPE, AMD], "1", AMD),
    ([LAVAPIPE, AMD], "radeon", AMD),
])
def test_adapter_preference_and_forcing(adapters, choice, expected):
    assert select_adapter(adapters, choice) is expected


@pytest.mark.parametrize("adapters, choice", [([LAVAPIPE], "nvidia"), ([LAVAPIPE], "7"), ([LAVAPIPE], "quadro"), ([], None)])
def test_unmatched_choice_names_the_available_adapters(adapters, choice):
    with pytest.raises(NeumatError) as err:
        select_adapter(adapters, choice)
    message = str(err.value)
    assert ("llvmpipe" in message) if adapters else ("bookworm-backports" in message)


def test_report_names_the_driver_and_ray_tracing_features(device):
    report = device_report(device)
    assert report.api == "Vulkan"
    major, minor, _ = (int(x) for x in report.vulkan_version.split("."))
    assert (major, minor) >= (1, 3)
    if report.kind.startswith("software"):
        # lavapipe from Mesa >= 25 is what the project is tested on: it must offer ray tracing.
        assert "Mesa" in report.driver
        assert int(report.driver.split("Mesa ")[1].split(".")[0]) >= 25
        for feature in ("ray_tracing", "ray_query", "acceleration_structure", "half"):
            assert report.features[feature], feature


_RENDER_AND_COUNT = """
import json
from neumat.renderer.core.device import create_device
from neumat.renderer.core.pattern import render_pattern
device = create_device()
render_pattern(device, 64, 32)
stats = device.shader_cache_stats
print(json.dumps({"hits": stats.hit_count, "misses": stats.miss_count}))
"""


def test_second_process_hits_the_shader_cache(tmp_path):
    env = dict(os.environ, NEUMAT_CACHE_DIR=str(tmp_path))
    runs = [json.loads(subprocess.run([sys.executable, "-c", _RENDER_AND_COUNT], env=env, check=True,
                                      capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for _ in range(2)]
    assert runs[0]["misses"] >= 1 and runs[0]["hits"] == 0, runs
    assert runs[1]["misses"] == 0 and runs[1]["hits"] >= 1, runs
    assert any((tmp_path / "shaders").rglob("*"))
