"""`neumat view` (renderer/viewer) in a real window on a virtual display (Xvfb, started here): the
window renders the scene and the panel, mouse drags and keys move the camera only when imgui does
not want them, flipping a material changes that object's pixels only, the view modes, screenshots,
reloading changed files (a broken one keeps the last good state), and the no-display error.

The scene is two small spheres at 64x40 pixels: on the left a reference-only material (no baked
asset: the panel says why), on the right one with an untrained tiny neural asset. Events are
injected by calling the viewer's glfw callbacks, and frames are run one by one, never by sleeping."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

import neumat.renderer.scene.scene_file as scene_module
from neumat.cli import main
from neumat.renderer.scene.scene_file import NEURAL, REFERENCE
from scene_helpers import diffuse, scene, tiny_asset, two_spheres

pytestmark = pytest.mark.gpu("ray_tracing", "acceleration_structure")

WINDOW = (960, 540)
SCENE_BODY = two_spheres((64, 40), '{ kind = "neural", asset = "grey.neumat", file = "grey.toml" }', fov=30, spread=1.1)


@pytest.fixture(scope="module")
def display():
    """A private Xvfb display for this module; it picks a free display number itself (-displayfd)."""
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        pytest.skip("Xvfb is not installed (tools/install.sh installs the xvfb package)")
    read, write = os.pipe()
    # -noreset: by default Xvfb resets when its last client disconnects, and a window opened during
    # the reset fails ("Failed to open display"); every test opens and closes its own.
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                             "-noreset"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    number = b""
    while not number.endswith(b"\n"):
        chunk = os.read(read, 16)
        if not chunk:
            proc.kill()
            pytest.fail("Xvfb exited before it reported its display")
        number += chunk
    os.close(read)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DISPLAY", f":{number.decode().strip()}")
        yield os.environ["DISPLAY"]
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("viewer")
    diffuse(root, "red", (0.8, 0.1, 0.1))
    diffuse(root, "grey", (0.5, 0.5, 0.5))
    tiny_asset(root / "grey.neumat", root / "grey.toml", 1)
    (root / "prebaked").mkdir()  # where red's pre-baked asset would be: empty
    return scene(root, SCENE_BODY)


@pytest.fixture
def open_viewer(device, display, scene_file, monkeypatch):
    """Opens viewers on the scene (keyword arguments: ViewSettings fields); closes them afterwards."""
    from neumat.renderer.viewer.session import ViewerSession, ViewSettings
    from neumat.renderer.viewer.window import Viewer, open_window

    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", scene_file.parent / "prebaked")
    opened = []

    def make(path=scene_file, **settings):
        window = open_window(*WINDOW, "test")
        viewer = Viewer(window, ViewerSession(device, path, ViewSettings(render_scale=1.0, **settings)))
        opened.append(viewer)
        return viewer

    yield make
    for viewer in opened:
        viewer.close()


def settle(viewer, frames=3):
    """imgui takes queued input events over several frames (one button change per frame)."""
    for _ in range(frames):
        viewer.frame()


def run_until_done(viewer, limit=60):
    """Frames until both accumulations reached the cap."""
    for _ in range(limit):
        viewer.frame()
        if not viewer.busy:
            return
    pytest.fail("the accumulation did not reach its cap")


def test_window_shows_scene_and_panel(open_viewer, tmp_path):
    viewer = open_viewer(spp_cap=8)
    frames = viewer.run(max_frames=5, screenshot=tmp_path / "window.png")
    assert frames == 5
    shot = np.asarray(Image.open(tmp_path / "window.png").convert("RGB")).astype(np.int32)
    assert shot.shape == (WINDOW[1], WINDOW[0], 3)
    # The render: the screenshot sampled at the centre of each render pixel is what the session shows.
    x, y, w, h = viewer.image_rect()
    view = viewer.session.image().astype(np.int32)
    rows = (y + (np.arange(view.shape[0]) + 0.5) * h / view.shape[0]).astype(int)
    cols = (x + (np.arange(view.shape[1]) + 0.5) * w / view.shape[1]).astype(int)
    assert np.abs(shot[rows][:, cols] - view).mean() < 2.0
    assert view.std() > 10  # a scene, not a flat colour
    ids = viewer.session.main_result().aovs["material_id"]
    red = view[ids == 0].mean(axis=0)
    assert red[0] > red[1] + 40 and red[0] > red[2] + 40  # the red sphere is there
    # The panel: a dark background left of the render with plenty of light text on it.
    from neumat.renderer.viewer.window import PANEL_WIDTH

    panel = shot[:, : PANEL_WIDTH - 20]
    assert np.median(panel) < 60
    assert (panel.min(axis=2) > 150).sum() > 2000  # text


def test_drag_orbits_and_panel_keeps_the_mouse(open_viewer):
    import glfw

    viewer = open_viewer(spp_cap=2)
    session = viewer.session
    run_until_done(viewer)
    before = session.image().astype(int)
    ids_before = session.main_result().aovs["material_id"]
    start = session.scene.camera.position.copy()
    target = session.scene.camera.target.copy()
    x, y, w, h = viewer.image_rect()
    cx, cy = x + w / 2, y + h / 2

    # Over the panel imgui wants the mouse: a drag and the wheel leave the camera alone.
    viewer.on_cursor_pos(viewer.window, 100, 300)
    settle(viewer)
    assert viewer.io.want_capture_mouse
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    viewer.on_cursor_pos(viewer.window, 180, 320)
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    viewer.on_scroll(viewer.window, 0, 3)
    run_until_done(viewer)
    np.testing.assert_array_equal(session.scene.camera.position, start)

    # Over the render: a left drag orbits about the target.
    viewer.on_cursor_pos(viewer.window, cx, cy)
    settle(viewer)
    assert not viewer.io.want_capture_mouse
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, 0)
    viewer.on_cursor_pos(viewer.window, cx + 150, cy + 10)
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, 0)
    run_until_done(viewer)
    moved = session.scene.camera.position
    assert np.linalg.norm(moved - start) > 0.5
    np.testing.assert_allclose(np.linalg.norm(moved - target), np.linalg.norm(start - target), rtol=1e-9)
    np.testing.assert_allclose(session.scene.camera.target, target)
    changed = np.abs(session.image().astype(int) - before).max(axis=2) > 30
    assert changed.mean() > 0.05  # the spheres moved across the image
    assert (session.main_result().aovs["material_id"] != ids_before).mean() > 0.05

    # Shift + drag pans (the target moves), the wheel zooms in, W flies forward, R resets.
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.PRESS, glfw.MOD_SHIFT)
    viewer.on_cursor_pos(viewer.window, cx + 240, cy + 10)
    viewer.on_mouse_button(viewer.window, glfw.MOUSE_BUTTON_LEFT, glfw.RELEASE, glfw.MOD_SHIFT)
    viewer.frame()
    assert np.linalg.norm(session.scene.camera.target - target) > 0.1
    distance = session.orbit.state.distance
    viewer.on_scroll(viewer.window, 0, 2)
    viewer.frame()
    assert session.orbit.state.distance < distance
    forward = session.orbit.basis()[0]
    aim = session.orbit.state.target.copy()
    viewer.on_key(viewer.window, glfw.KEY_W, 0, glfw.PRESS, 0)
    viewer.frame()
    viewer.frame()
    viewer.on_key(viewer.window, glfw.KEY_W, 0, glfw.RELEASE, 0)
    assert np.dot(session.orbit.state.target - aim, forward) > 0
    viewer.on_key(viewer.window, glfw.KEY_R, 0, glfw.PRESS, 0)
    viewer.frame()
    np.testing.assert_allclose(session.scene.camera.position, start, atol=1e-9)


def _dilate(mask):
    out = mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            out |= np.roll(np.roll(mask, dy, 0), dx, 1)
    return out


def test_material_toggle_changes_only_that_object(open_viewer):
    """max_depth 1: no light reaches the left sphere by way of the right one, so flipping the right
    one between neural and reference must leave every other pixel as it was (up to float rounding:
    the samples are summed in other batches when frames take other times)."""
    viewer = open_viewer(spp_cap=4, max_depth=1)
    session = viewer.session
    rows = {r.name: r for r in session.objects()}
    assert rows["left"].kinds == (REFERENCE,) and "red.neumat" in rows["left"].reason
    assert set(rows["right"].kinds) == {NEURAL, REFERENCE} and rows["right"].kind == NEURAL
    run_until_done(viewer)
    neural = session.main_result()
    session.set_kind(rows["right"].index, REFERENCE)
    run_until_done(viewer)
    reference = session.main_result()
    assert neural.spp == reference.spp == 4

    tracer = session.tracer
    right_neural = neural.aovs["material_id"] == tracer.neural_id_base
    right_reference = reference.aovs["material_id"] == tracer.material_names.index("grey")
    assert right_neural.sum() > 100 and np.array_equal(right_neural, right_reference)
    changed = np.abs(neural.image - reference.image).max(axis=2) > 1e-4
    assert not np.any(changed & ~_dilate(right_neural))  # nothing outside the object (edges included)
    assert changed[right_neural].mean() > 0.9
    left = neural.aovs["material_id"] == 0
    np.testing.assert_allclose(neural.image[left], reference.image[left], rtol=1e-5)


def test_view_modes_and_screenshot(open_viewer, tmp_path):
    from neumat.renderer.images.io import read_image, to_display
    from neumat.renderer.viewer.session import VIEW_MODES

    viewer = open_viewer(spp_cap=2, view_mode="split", denoise=False)  # raw images: tests/test_denoise.py has the denoised view
    session = viewer.session
    run_until_done(viewer)  # the view and the background reference
    assert session.reference_spp == 2 and session.reference is not None
    main, ref = to_display(session.main_result().image), to_display(session.reference_result().image)
    split = session.image()
    column = split.shape[1] // 2
    np.testing.assert_array_equal(split[:, :column], main[:, :column])
    np.testing.assert_array_equal(split[:, column:], ref[:, column:])
    ids = session.main_result().aovs["material_id"]
    background = ~_dilate(ids >= 0)  # no sample hit anything there
    for mode in VIEW_MODES:
        session.settings.view_mode = mode
        image = session.image()
        assert image.shape == (40, 64, 3) and image.dtype == np.uint8
        if mode == "error":
            assert 0.0 < session.flip_mean < 1.0
            right = ids == session.tracer.neural_id_base  # the untrained neural sphere differs
            assert image[right].mean() > image[ids == -1].mean() + 20
        if mode in ("lod", "normals"):
            assert np.all(image[background] == (0 if mode == "lod" else 128))
    png, exr = session.save_screenshot(tmp_path)
    assert png.suffix == ".png" and exr.suffix == ".exr"
    np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")), session.image())
    np.testing.assert_allclose(read_image(exr), session.main_result().image, rtol=1e-6)


def _scene_copy(scene_file, folder):
    """The test scene and its files in `folder`, with an empty pre-baked asset folder beside."""
    for f in scene_file.parent.iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    shutil.copytree(scene_file.parent / "grey.neumat", folder / "grey.neumat")
    (folder / "prebaked").mkdir()
    return folder / scene_file.name


def test_reload_keeps_last_good_state(open_viewer, scene_file, tmp_path):
    """A material file that breaks is reported and the last good state keeps rendering; fixing it
    reloads; the window notices changed files by itself."""
    viewer = open_viewer(path=_scene_copy(scene_file, tmp_path), spp_cap=1)
    session = viewer.session
    run_until_done(viewer)
    before = session.main_result().image.copy()
    old_tracer = session.tracer
    (tmp_path / "red.toml").write_text("[material]\nname = 'red'\n[[layers]]\ntype = 'plastic'\n")
    assert session.changed_files() == [tmp_path / "red.toml"]
    viewer._next_watch = 0.0  # look for changes on this frame
    viewer.frame()            # notices: shows "reloading", reloads on the next frame
    viewer.frame()
    assert session.error is not None and "red.toml" in session.error and "plastic" in session.error
    assert session.tracer is old_tracer and session.changed_files() == []  # not retried
    run_until_done(viewer)
    np.testing.assert_array_equal(session.main_result().image, before)

    diffuse(tmp_path, "red", (0.1, 0.8, 0.1))
    assert session.reload() and session.error is None and session.tracer is not old_tracer
    run_until_done(viewer)
    ids = session.main_result().aovs["material_id"] == 0
    green = session.main_result().image[ids].mean(axis=0)
    assert green[1] > 2 * green[0]


@pytest.mark.slow  # compiles the path tracer for a new neural set: over a minute on lavapipe, cold
def test_bake_finishing_makes_object_switchable(open_viewer, scene_file, tmp_path, monkeypatch):
    path = _scene_copy(scene_file, tmp_path)
    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", tmp_path / "prebaked")  # overrides open_viewer's
    viewer = open_viewer(path=path, spp_cap=1)
    session = viewer.session
    assert session.objects()[0].kinds == (REFERENCE,)
    tiny_asset(tmp_path / "prebaked" / "red.neumat", tmp_path / "red.toml", 2)  # the bake of red ends
    assert session.changed_files() == [tmp_path / "prebaked" / "red.neumat"]
    assert session.reload()
    left = session.objects()[0]
    assert set(left.kinds) == {NEURAL, REFERENCE} and left.kind == NEURAL and left.reason is None
    run_until_done(viewer)
    assert np.any(session.main_result().aovs["material_id"] == session.tracer.neural_id_base + 1)


def test_no_display_exits_2_and_suggests_render(scene_file, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["view", str(scene_file)]) == 2
    err = capsys.readouterr().err
    assert "needs a display" in err and "$DISPLAY is not set" in err and "neumat render" in err


def test_buffer_path_takes_a_new_asset_without_compiling(device, scene_file, tmp_path, monkeypatch):
    """`neumat view --mlp buffer`: the path tracer reads every network's weights from a buffer, so a
    bake that finishes while the viewer runs makes its object switchable without a new compile."""
    from neumat.renderer.core.device_state import device_state
    from neumat.renderer.pathtracer import tracer as tracer_module
    from neumat.renderer.viewer.session import ViewerSession, ViewSettings

    path = _scene_copy(scene_file, tmp_path)
    monkeypatch.setattr(scene_module, "NEURAL_ASSET_DIR", tmp_path / "prebaked")
    session = ViewerSession(device, path, ViewSettings(render_scale=1.0, spp_cap=1), mlp="buffer")
    assert session.tracer.neural_set.mlp == "buffer" and session.objects()[0].kinds == (REFERENCE,)
    variant, compiled = session.tracer.variant, set(device_state(device, tracer_module.__name__))
    tiny_asset(tmp_path / "prebaked" / "red.neumat", tmp_path / "red.toml", 2)
    assert session.reload() and session.error is None
    assert set(session.objects()[0].kinds) == {NEURAL, REFERENCE}
    assert session.tracer.variant == variant and set(device_state(device, tracer_module.__name__)) == compiled
    for _ in range(20):
        if not session.step():
            break
    assert np.any(session.main_result().aovs["material_id"] == session.tracer.neural_id_base + 1)
