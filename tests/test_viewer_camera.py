"""The viewer's camera controls (renderer/viewer/camera.py), as plain math: no window, no device."""

import math

import numpy as np
import pytest

from neumat.renderer.scene.scene_file import Camera
from neumat.renderer.viewer.camera import MAX_PITCH, ORBIT_RADIANS_PER_PIXEL, OrbitCamera


def scene_camera(position=(0.0, 1.35, 8.0), target=(0.0, 0.75, 0.0)) -> Camera:
    return Camera(np.array(position), np.array(target), np.array([0.0, 1.0, 0.0]), 40.0, 800, 450)


def test_starts_at_the_scene_camera():
    base = scene_camera()
    cam = OrbitCamera(base).camera()
    np.testing.assert_allclose(cam.position, base.position, atol=1e-12)
    np.testing.assert_allclose(cam.target, base.target)
    assert (cam.fov, cam.width, cam.height) == (40.0, 800, 450)


def test_orbit_keeps_distance_and_turns_with_the_mouse():
    orbit = OrbitCamera(scene_camera())
    distance = orbit.state.distance
    orbit.orbit(100.0, 0.0)  # drag right: the camera goes left (-x from +z), the scene turns right
    cam = orbit.camera()
    assert cam.position[0] < -1.0
    np.testing.assert_allclose(np.linalg.norm(cam.position - cam.target), distance)
    orbit.orbit(-100.0, 0.0)
    np.testing.assert_allclose(orbit.camera().position, scene_camera().position, atol=1e-12)
    height = orbit.camera().position[1]
    orbit.orbit(0.0, 50.0)  # drag down: the camera rises
    assert orbit.camera().position[1] > height
    orbit.orbit(0.0, 10 * math.pi / ORBIT_RADIANS_PER_PIXEL)  # never over the top
    assert orbit.state.pitch == pytest.approx(MAX_PITCH)
    forward, right, up = orbit.basis()
    assert np.all(np.isfinite(forward)) and abs(np.dot(forward, right)) < 1e-9


def test_pan_follows_the_cursor_at_the_target_depth():
    orbit = OrbitCamera(scene_camera(position=(0.0, 0.0, 5.0), target=(0.0, 0.0, 0.0)))
    height = 400.0
    orbit.pan(40.0, 0.0, height)  # a tenth of the view's height to the right
    visible = 2 * 5.0 * math.tan(math.radians(20.0))
    np.testing.assert_allclose(orbit.state.target, [-0.1 * visible, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(orbit.camera().position - orbit.camera().target, [0.0, 0.0, 5.0], atol=1e-12)
    orbit.pan(0.0, 40.0, height)  # drag down: the scene moves down, the camera up
    assert orbit.state.target[1] == pytest.approx(0.1 * visible)


def test_zoom_fly_and_reset():
    orbit = OrbitCamera(scene_camera(position=(0.0, 0.0, 5.0), target=(0.0, 0.0, 0.0)))
    orbit.zoom(2)
    assert orbit.state.distance < 5.0
    orbit.zoom(-1000)
    orbit.zoom(1000)
    assert orbit.state.distance > 0.0
    orbit.reset()
    orbit.fly(1, 0, 0, seconds=1.0)  # W: forward (-z here) at half the distance per second
    np.testing.assert_allclose(orbit.camera().position, [0.0, 0.0, 2.5], atol=1e-12)
    orbit.fly(0, 1, 1, seconds=1.0)  # D and E: right and up
    np.testing.assert_allclose(orbit.state.target, [2.5, 2.5, -2.5], atol=1e-12)
    orbit.reset()
    np.testing.assert_allclose(orbit.camera().position, [0.0, 0.0, 5.0], atol=1e-12)


def test_camera_looking_straight_down():
    orbit = OrbitCamera(scene_camera(position=(0.0, 5.0, 0.0), target=(0.0, 0.0, 0.0)))
    assert orbit.state.pitch == pytest.approx(MAX_PITCH)
    assert np.all(np.isfinite(orbit.camera().basis()[1]))
