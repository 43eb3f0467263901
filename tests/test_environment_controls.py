"""PathTracer.set_environment (the viewer's environment rotation and intensity): turning the loaded
environment gives the image of a scene file with that `rotation`, the intensity scales every
sample exactly (the sampling tables are scale invariant, so the random decisions do not change),
and going back restores the first image."""

import numpy as np
import pytest

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import write_image
from neumat.renderer.pathtracer.tracer import prepare_render
from neumat.renderer.scene.scene_file import load_scene
from scene_helpers import camera, diffuse, scene, sun_sky_map

pytestmark = pytest.mark.gpu("ray_tracing", "acceleration_structure")

BODY = camera(position=(0, 0.8, 3.0), fov=60, size=(32, 20)) + """
[environment]
type = "map"
file = "sky.exr"
rotation = {rotation}
[render]
max_depth = 2
[[objects]]
mesh = {{ shape = "sphere", radius = 0.6 }}
material = "grey.toml"
"""


def test_rotation_and_intensity(device, tmp_path):
    diffuse(tmp_path, "grey", (0.6, 0.6, 0.6))
    write_image(tmp_path / "sky.exr", sun_sky_map(128, 64))
    tracer, _ = prepare_render(device, load_scene(scene(tmp_path, BODY.format(rotation=0), "still")))
    turned, _ = prepare_render(device, load_scene(scene(tmp_path, BODY.format(rotation=70), "turned")))
    first = tracer.render(4, seed=3)

    tracer.set_environment(70.0, 1.0)
    rotated = tracer.render(4, seed=3)
    np.testing.assert_allclose(rotated.image, turned.render(4, seed=3).image, rtol=1e-5, atol=1e-6)
    assert np.abs(rotated.image - first.image).mean() > 0.01

    tracer.set_environment(0.0, 2.5)
    np.testing.assert_allclose(tracer.render(4, seed=3).image, 2.5 * first.image, rtol=1e-5, atol=1e-6)
    tracer.set_environment(0.0, 1.0)
    np.testing.assert_array_equal(tracer.render(4, seed=3).image, first.image)

    with pytest.raises(NeumatError, match="intensity >= 0"):
        tracer.set_environment(0.0, -1.0)
