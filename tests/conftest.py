"""Shared fixtures: one Vulkan device for the whole session, and the `gpu(feature, ...)` marker."""

import pytest

from neumat.renderer.materials.graph import load_material

from neumat.renderer.core.device import REPORTED_FEATURES, create_device


@pytest.fixture(scope="session")
def device():
    """The device every test shares (lavapipe on machines without a GPU)."""
    return create_device()


# A two-layer checker material (diffuse under a coat whose roughness follows the checker), small
# enough for asset and report tests.
TINY_MATERIAL_TOML = """
[material]
name = "tiny"
resolution = 16

[nodes.check]
type = "checker"
columns = 2
rows = 4

[nodes.albedo]
type = "mix"
a = [0.8, 0.2, 0.1]
b = [0.1, 0.3, 0.7]
factor = "check"

[nodes.rough]
type = "mix"
a = 0.3
b = 0.05
factor = "check"

[[layers]]
type = "diffuse"
albedo = "albedo"

[[layers]]
type = "dielectric"
ior = 1.5
alpha = "rough"
"""


@pytest.fixture(scope="module")
def tiny_material(tmp_path_factory):
    path = tmp_path_factory.mktemp("material") / "tiny.toml"
    path.write_text(TINY_MATERIAL_TOML)
    return load_material(path)


def pytest_collection_modifyitems(config, items):
    needs = [(item, marker) for item in items for marker in item.iter_markers("gpu")]
    if not needs:
        return
    dev = create_device()
    for item, marker in needs:
        missing = [f for f in marker.args if not dev.has_feature(REPORTED_FEATURES[f])]
        if missing:
            item.add_marker(pytest.mark.skip(
                reason=f"{dev.info.adapter_name} lacks {', '.join(missing)}"))
