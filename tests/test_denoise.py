"""Denoising (renderer/images/denoise.py, Intel Open Image Denoise): a noisy render of a small
flat-lit scene comes measurably closer to its converged image, `neumat render --denoise` writes the
files docs/scenes.md promises, the viewer's denoise toggle (the checkbox's setting and the N key)
under Xvfb, and the error without OIDN.

The scene: two diffuse spheres (red and grey) and a box on a white floor under a uniform white
environment, 64x48 pixels, so its noise is the ambient occlusion and inter-reflection of the
environment light."""

import sys

import numpy as np
import pytest
from PIL import Image

from neumat.cli import main
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import read_image
from neumat.renderer.images.metrics import flip_error, relative_squared_error
from neumat.renderer.pathtracer.tracer import prepare_render
from neumat.renderer.scene.scene_file import load_scene
from scene_helpers import camera, diffuse, scene

pytest.importorskip("pyoidn", reason="pyoidn (Open Image Denoise) is not installed: tools/install.sh installs it")

SIZE = (64, 48)
NOISY_SPP, CONVERGED_SPP = 2, 256
# Error of the denoised 2-spp image over that of the raw one (Denoiser's defaults: quality high,
# prefiltered guides), measured on seeds 1..8: relative MSE against the 256-spp render 0.075-0.111
# of the raw one's (0.037-0.043), FLIP against a 1024-spp render 0.58-0.64 of the raw one's
# (0.047-0.059). The bounds sit well above the worst seed (2.3x and 1.25x); a denoiser that does
# nothing scores 1 on both. The image's mean moved by at most 0.5% on any seed.
MAX_MSE_RATIO, MAX_FLIP_RATIO, MAX_MEAN_CHANGE = 0.25, 0.8, 0.02


@pytest.fixture(scope="module")
def flat_scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("denoise")
    diffuse(root, "red", (0.8, 0.15, 0.1))
    diffuse(root, "grey", (0.5, 0.5, 0.5))
    diffuse(root, "white", (0.8, 0.8, 0.8))
    return scene(root, camera(position=(0, 1.6, 4.5), target=(0, 0.4, 0), fov=45, size=SIZE) + """
[environment]
type = "constant"
color = 1
[render]
max_depth = 4
[[objects]]
name = "red"
mesh = { shape = "sphere", radius = 0.5 }
translate = [-0.8, 0.5, 0]
material = "red.toml"
[[objects]]
name = "grey"
mesh = { shape = "sphere", radius = 0.5 }
translate = [0.8, 0.5, 0.2]
material = "grey.toml"
[[objects]]
name = "box"
mesh = { shape = "box", size = [0.6, 0.6, 0.6] }
translate = [0.0, 0.3, -0.9]
rotate = [0, 30, 0]
material = "grey.toml"
[[objects]]
name = "floor"
mesh = { shape = "plane", size = [8, 8] }
material = "white.toml"
""")


@pytest.fixture(scope="module")
def flat_tracer(device, flat_scene):
    tracer, _ = prepare_render(device, load_scene(flat_scene))
    return tracer


@pytest.mark.gpu("ray_tracing", "acceleration_structure")
def test_denoising_brings_a_noisy_render_closer(flat_tracer):
    from neumat.renderer.images.denoise import Denoiser

    converged = flat_tracer.render(CONVERGED_SPP, seed=1000).image
    denoiser = Denoiser()
    try:
        for seed in (1, 2, 3):
            noisy = flat_tracer.render(NOISY_SPP, seed=seed)
            denoised = denoiser(noisy.image, noisy.aovs["albedo"], noisy.aovs["normal"])
            assert denoised.shape == noisy.image.shape and denoised.dtype == np.float32
            raw_error = relative_squared_error(converged, noisy.image).mean()
            denoised_error = relative_squared_error(converged, denoised).mean()
            assert denoised_error < MAX_MSE_RATIO * raw_error, (seed, raw_error, denoised_error)
            raw_flip, denoised_flip = flip_error(converged, noisy.image)[1], flip_error(converged, denoised)[1]
            assert denoised_flip < MAX_FLIP_RATIO * raw_flip, (seed, raw_flip, denoised_flip)
            # Not by darkening the scene: the mean stays.
            np.testing.assert_allclose(denoised.mean(axis=(0, 1)), converged.mean(axis=(0, 1)), rtol=MAX_MEAN_CHANGE)
    finally:
        denoiser.close()


def test_denoiser_checks_its_input():
    from neumat.renderer.images.denoise import denoise

    image = np.full((8, 12, 3), 0.5, np.float32)
    image[0, 0] = np.nan
    image[0, 1] = -1.0
    out = denoise(image, np.full_like(image, 0.5), np.zeros_like(image))
    assert np.all(np.isfinite(out)) and out.min() >= 0.0
    with pytest.raises(NeumatError, match="albedo"):
        denoise(image, np.zeros((8, 11, 3), np.float32))
    with pytest.raises(NeumatError, match="HxWx3"):
        denoise(image[..., 0])


def test_missing_oidn_is_a_clear_error(monkeypatch):
    from neumat.renderer.images.denoise import Denoiser

    monkeypatch.setitem(sys.modules, "pyoidn", None)  # import fails as if not installed
    with pytest.raises(NeumatError, match="pyoidn.*pip install pyoidn"):
        Denoiser()


@pytest.mark.gpu("ray_tracing", "acceleration_structure")
def test_render_denoise_writes_png_and_exr_beside(flat_scene, tmp_path, capsys):
    common = [str(flat_scene), "--spp", "2", "--seed", "3", "--denoise"]
    exr = tmp_path / "flat.exr"
    assert main(["render", *common, "-o", str(exr)]) == 0
    beside = tmp_path / "flat.denoised.exr"
    assert "flat.denoised.exr (denoised)" in capsys.readouterr().out
    assert main(["render", str(flat_scene), "--spp", "2", "--seed", "3", "-o", str(tmp_path / "raw.exr")]) == 0
    raw, denoised = read_image(exr), read_image(beside)
    np.testing.assert_array_equal(raw, read_image(tmp_path / "raw.exr"))  # the EXR beauty stays raw
    assert denoised.shape == raw.shape
    assert np.abs(np.diff(denoised, axis=1)).mean() < 0.5 * np.abs(np.diff(raw, axis=1)).mean()  # smoother

    png = tmp_path / "flat.png"
    assert main(["render", *common, "-o", str(png)]) == 0
    assert not (tmp_path / "flat.denoised.png").exists()
    from neumat.renderer.images.io import to_display

    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), to_display(denoised))


@pytest.fixture(scope="module")
def xvfb_display():
    """A private Xvfb display (it reports its number on a pipe); -noreset keeps it up between the
    windows of successive tests."""
    import os
    import shutil
    import subprocess

    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (tools/install.sh installs the xvfb package)")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x600x24", "-nolisten", "tcp",
                             "-noreset"], pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        number = pipe.readline().decode().strip()
    if not number:
        proc.kill()
        pytest.fail("Xvfb exited before it reported its display")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", f":{number}")
        yield
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.gpu("ray_tracing", "acceleration_structure")
def test_viewer_denoise_toggle(device, xvfb_display, flat_scene, tmp_path, monkeypatch):
    """Denoised while the view is young (a camera move starts it again), raw past the sample count,
    always with `denoise_always`; the N key toggles it; screenshots save what is shown with the
    raw EXR beside; without OIDN the panel's error replaces the denoised view."""
    import glfw

    from neumat.renderer.images.denoise import Denoiser
    from neumat.renderer.images.io import to_display
    from neumat.renderer.viewer.session import DENOISE_AUX, DENOISE_QUALITY, ViewerSession, ViewSettings
    from neumat.renderer.viewer import session as session_module
    from neumat.renderer.viewer.window import Viewer, open_window

    monkeypatch.setattr(session_module, "FRAME_BUDGET_SECONDS", 0.0)  # one sample per pixel per frame
    window = open_window(800, 480, "test")
    session = ViewerSession(device, flat_scene, ViewSettings(render_scale=1.0, spp_cap=3, denoise_until_spp=2))
    viewer = Viewer(window, session, tmp_path)
    reference_denoiser = Denoiser(DENOISE_QUALITY, DENOISE_AUX)
    try:
        def denoised_display():
            r = session.main_result()
            return to_display(reference_denoiser(r.image, r.aovs["albedo"], r.aovs["normal"]))

        viewer.frame()
        assert session.main_spp == 1 and session.denoising
        shown = session.image()
        assert viewer._shown is shown  # what the window's texture holds
        np.testing.assert_allclose(shown, denoised_display(), atol=1)
        raw = to_display(session.main_result().image)
        assert np.abs(np.diff(shown.astype(float), axis=1)).mean() < np.abs(np.diff(raw.astype(float), axis=1)).mean()

        viewer.on_key(window, glfw.KEY_N, 0, glfw.PRESS, 0)  # off
        viewer.on_key(window, glfw.KEY_N, 0, glfw.RELEASE, 0)
        viewer.frame()
        assert not session.settings.denoise and not session.denoising
        np.testing.assert_array_equal(session.image(), to_display(session.main_result().image))
        assert viewer._shown is session.image()
        viewer.on_key(window, glfw.KEY_N, 0, glfw.PRESS, 0)  # on again
        viewer.frame()
        assert session.settings.denoise

        while viewer.busy:
            viewer.frame()
        assert session.main_spp == 3 and not session.denoising  # still, past denoise_until_spp: raw
        np.testing.assert_array_equal(session.image(), to_display(session.main_result().image))
        png, exr = session.save_screenshot(tmp_path)  # raw view: no denoised EXR
        np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), session.image())
        session.settings.denoise_always = True
        viewer.frame()
        assert session.denoising
        np.testing.assert_allclose(session.image(), denoised_display(), atol=1)
        (tmp_path / "always").mkdir()
        png, exr, denoised_exr = session.save_screenshot(tmp_path / "always")
        np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), session.image())
        np.testing.assert_array_equal(read_image(exr), session.main_result().image)  # the EXR stays raw
        np.testing.assert_array_equal(read_image(denoised_exr), session.denoised_image())
        # The split view denoises each side's columns with that side's AOVs (here both sides are
        # the reference materials: one accumulation).
        session.settings.view_mode, session.settings.split = "split", 0.25
        viewer.frame()
        r, column = session.main_result(), 16
        sides = [reference_denoiser(r.image[:, c], r.aovs["albedo"][:, c], r.aovs["normal"][:, c])
                 for c in (slice(0, column), slice(column, None))]
        np.testing.assert_allclose(session.image(), to_display(np.concatenate(sides, axis=1)), atol=1)
        session.settings.view_mode, session.settings.denoise_always = "beauty", False

        session.orbit.orbit(40.0, 0.0)  # a camera move: young again, denoised
        session.restart()
        viewer.frame()
        assert session.main_spp == 1 and session.denoising

        monkeypatch.setitem(sys.modules, "pyoidn", None)  # OIDN gone: the view falls back to raw
        session._denoiser = None
        session.restart()
        viewer.frame()
        assert session.denoise_error and "pyoidn" in session.denoise_error
        assert not session.settings.denoise and not session.denoising
        np.testing.assert_array_equal(session.image(), to_display(session.main_result().image))
        session.set_denoise(True)
        assert not session.settings.denoise
    finally:
        reference_denoiser.close()
        viewer.close()


def test_render_denoise_without_oidn_exits_2_before_rendering(flat_scene, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pyoidn", None)
    assert main(["render", str(flat_scene), "--spp", "1", "--denoise", "-o", str(tmp_path / "x.exr")]) == 2
    assert "pyoidn" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
