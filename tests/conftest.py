"""Shared fixtures: one Vulkan device for the whole session, and the `gpu(feature, ...)` marker."""

import pytest

from renderer.device import REPORTED_FEATURES, create_device


@pytest.fixture(scope="session")
def device():
    """The device every test shares (lavapipe on machines without a GPU)."""
    return create_device()


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
