"""The viewer's window: glfw with an OpenGL 3.3 core context, the render as one texture drawn by a
fullscreen triangle into the area right of the panel, and an imgui-bundle panel (imgui_bundle's
pure-Python glfw + OpenGL 3 backend). The render state lives in ViewerSession; this module draws
it and turns input into session calls.

The input handlers (on_key, on_cursor_pos, on_mouse_button, on_scroll) are the glfw callbacks, so
tests drive the viewer by calling them with the same arguments; `frame()` runs one iteration of
the loop, `run()` many. Mouse and keys reach the camera only when imgui does not want them
(io.want_capture_mouse / want_capture_keyboard: the pointer is over the panel, a widget is active).
"""

import os
import time
from pathlib import Path

from imgui_bundle import imgui  # before glfw: imgui_bundle points pyglfw at its own GLFW library
from imgui_bundle.python_backends.glfw_backend import GlfwRenderer

import glfw
import numpy as np
import OpenGL.GL as gl
from OpenGL.GL.shaders import compileProgram, compileShader

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.images.io import TONEMAPPERS
from neumat.renderer.scene.scene_file import NEURAL, REFERENCE
from neumat.renderer.images.io import write_png
from neumat.renderer.viewer.session import DENOISED_MODES, LOD_RANGE, VIEW_MODES, ViewerSession, heatmap

PANEL_WIDTH = 460
DIVIDER_GRAB_PIXELS = 8       # a press this close to the split divider drags it, not the camera
WATCH_INTERVAL_SECONDS = 1.0  # how often changed files are looked for
IDLE_WAIT_SECONDS = 0.1       # with nothing to render, wait this long for input
FLY_KEYS = {glfw.KEY_W: (1, 0, 0), glfw.KEY_S: (-1, 0, 0), glfw.KEY_D: (0, 1, 0), glfw.KEY_A: (0, -1, 0),
            glfw.KEY_E: (0, 0, 1), glfw.KEY_Q: (0, 0, -1)}
WHITE = 0xFFFFFFFF
LABEL_BACKGROUND = 0xB0000000  # ImU32 is ABGR: translucent black
ERROR_COLOUR = imgui.ImVec4(1.0, 0.45, 0.4, 1.0)
NOTE_COLOUR = imgui.ImVec4(1.0, 0.85, 0.4, 1.0)

_VERTEX = """#version 330 core
out vec2 screen;
void main() {
    // One triangle that covers the viewport: (0,0), (2,0), (0,2) in screen units.
    screen = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    gl_Position = vec4(screen * 2.0 - 1.0, 0.0, 1.0);
}
"""
_FRAGMENT = """#version 330 core
in vec2 screen;
out vec4 colour;
uniform sampler2D image;
void main() {
    // Image rows run top to bottom; the texture's t runs bottom to top.
    colour = vec4(texture(image, vec2(screen.x, 1.0 - screen.y)).rgb, 1.0);
}
"""


def open_window(width: int, height: int, title: str, scene_hint: str = "SCENE"):
    """A hidden glfw window with an OpenGL 3.3 core context, current on this thread. Without a
    display: NeumatError saying so and what to run instead."""
    errors: list[str] = []
    glfw.set_error_callback(lambda code, text: errors.append(
        text.decode(errors="replace") if isinstance(text, bytes) else str(text)))
    why = None
    if not glfw.init():
        why = errors[-1] if errors else "glfw.init() failed"
    else:
        glfw.window_hint(glfw.CONTEXT_VERSION_MAJOR, 3)
        glfw.window_hint(glfw.CONTEXT_VERSION_MINOR, 3)
        glfw.window_hint(glfw.OPENGL_PROFILE, glfw.OPENGL_CORE_PROFILE)
        glfw.window_hint(glfw.OPENGL_FORWARD_COMPAT, True)
        glfw.window_hint(glfw.VISIBLE, False)  # shown once the scene is loaded
        window = glfw.create_window(width, height, title, None, None)
        if window:
            glfw.make_context_current(window)
            return window
        glfw.terminate()
        why = f"cannot open an OpenGL 3.3 core window ({errors[-1] if errors else 'no reason given'})"
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        why = f"$DISPLAY is not set ({why})"
    raise NeumatError(f"neumat view needs a display and has none: {why}. Render to a file instead with "
                      f"`neumat render {scene_hint} -o {Path(scene_hint).stem}.png`, or give the viewer a virtual "
                      f"display: `xvfb-run -a neumat view {scene_hint}`.")


def close_window(window) -> None:
    glfw.destroy_window(window)
    glfw.terminate()


class Viewer:
    """The window's loop around a ViewerSession."""

    def __init__(self, window, session: ViewerSession, screenshot_dir: str | Path = "."):
        self.window = window
        self.session = session
        self.screenshot_dir = Path(screenshot_dir)
        glfw.make_context_current(window)
        imgui.create_context()
        self.io = imgui.get_io()
        self.io.set_ini_filename(None)  # no imgui.ini in the working folder
        self.impl = GlfwRenderer(window, attach_callbacks=False)
        glfw.set_key_callback(window, self.on_key)
        glfw.set_char_callback(window, self.on_char)
        glfw.set_cursor_pos_callback(window, self.on_cursor_pos)
        glfw.set_mouse_button_callback(window, self.on_mouse_button)
        glfw.set_scroll_callback(window, self.on_scroll)
        self._vao = gl.glGenVertexArrays(1)
        gl.glBindVertexArray(self._vao)
        self._program = compileProgram(compileShader(_VERTEX, gl.GL_VERTEX_SHADER),
                                       compileShader(_FRAGMENT, gl.GL_FRAGMENT_SHADER))
        gl.glBindVertexArray(0)
        self._texture = gl.glGenTextures(1)
        self._texture_size: tuple[int, int] | None = None
        self._shown: np.ndarray | None = None  # the pixels in the texture
        self.drag: str | None = None         # "orbit", "pan" or "divider" while a button is held
        self.cursor = (0.0, 0.0)
        self._held: set[int] = set()         # fly keys held down
        self.frame_seconds = 0.0             # the last frame, all of it
        self._last_frame: float | None = None
        self._next_watch = time.perf_counter() + WATCH_INTERVAL_SECONDS
        self.auto_reload = True
        self.changed: list[Path] = []        # files changed on disk, not reloaded yet
        self._reload_next_frame = False
        self.status = ""                     # the last screenshot or reload, for the panel
        self.busy = False                    # the last step() rendered samples
        glfw.show_window(window)

    # --- input ------------------------------------------------------------------------------------
    def image_rect(self) -> tuple[float, float, float, float]:
        """(x, y, width, height) of the render in window coordinates (y down): the area right of
        the panel, fitted to the render's aspect ratio."""
        win_w, win_h = glfw.get_window_size(self.window)
        w, h = self.session.size
        area_w, area_h = max(win_w - PANEL_WIDTH, 1), max(win_h, 1)
        scale = min(area_w / w, area_h / h)
        return PANEL_WIDTH + (area_w - w * scale) / 2, (area_h - h * scale) / 2, w * scale, h * scale

    def _divider_x(self) -> float:
        x, _, w, _ = self.image_rect()
        return x + self.session.settings.split * w

    def on_key(self, window, key: int, scancode: int, action: int, mods: int) -> None:
        self.impl.keyboard_callback(window, key, scancode, action, mods)
        if action == glfw.RELEASE:
            self._held.discard(key)
            return
        if self.io.want_capture_keyboard:
            return
        if key in FLY_KEYS:
            self._held.add(key)
        elif key == glfw.KEY_R and action == glfw.PRESS:
            self.session.orbit.reset()
            self.session.restart()
        elif key == glfw.KEY_N and action == glfw.PRESS:
            self.session.set_denoise(not self.session.settings.denoise)

    def on_char(self, window, char: int) -> None:
        self.impl.char_callback(window, char)

    def on_cursor_pos(self, window, x: float, y: float) -> None:
        self.io.add_mouse_pos_event(x, y)
        dx, dy = x - self.cursor[0], y - self.cursor[1]
        self.cursor = (x, y)
        if self.drag is None or (dx == 0 and dy == 0):
            return
        session = self.session
        if self.drag == "divider":
            rx, _, rw, _ = self.image_rect()
            session.settings.split = float(np.clip((x - rx) / rw, 0.0, 1.0))
            return  # the divider only changes which image shows where
        if self.drag == "orbit":
            session.orbit.orbit(dx, dy)
        else:
            session.orbit.pan(dx, dy, self.image_rect()[3])
        session.restart()

    def on_mouse_button(self, window, button: int, action: int, mods: int) -> None:
        self.io.add_mouse_button_event(button, action == glfw.PRESS)
        if action == glfw.RELEASE:
            self.drag = None
            return
        if self.io.want_capture_mouse or self.cursor[0] < PANEL_WIDTH:  # the panel's, even between frames
            return
        if button == glfw.MOUSE_BUTTON_LEFT and not mods & glfw.MOD_SHIFT:
            near = abs(self.cursor[0] - self._divider_x()) <= DIVIDER_GRAB_PIXELS
            self.drag = "divider" if self.session.settings.view_mode == "split" and near else "orbit"
        elif button == glfw.MOUSE_BUTTON_MIDDLE or button == glfw.MOUSE_BUTTON_LEFT:
            self.drag = "pan"

    def on_scroll(self, window, x_offset: float, y_offset: float) -> None:
        self.io.add_mouse_wheel_event(x_offset, y_offset)
        if not self.io.want_capture_mouse and self.cursor[0] >= PANEL_WIDTH and y_offset:
            self.session.orbit.zoom(y_offset)
            self.session.restart()

    def _fly(self, seconds: float) -> None:
        if not self._held or self.io.want_capture_keyboard:
            return
        move = np.sum([FLY_KEYS[k] for k in self._held], axis=0)
        if np.any(move):
            self.session.orbit.fly(*move, seconds=min(seconds, 0.25))
            self.session.restart()

    # --- the loop ---------------------------------------------------------------------------------
    def run(self, max_frames: int | None = None, screenshot: str | Path | None = None) -> int:
        """Runs frames until the window closes, `max_frames` have run, or (with `screenshot` and no
        `max_frames`) the accumulation reached its cap; with `screenshot` the last frame is written
        there as a PNG (the whole window: render and panel). Returns the frames run."""
        frames = 0
        plain = max_frames if screenshot is None or max_frames is None else max_frames - 1
        while not glfw.window_should_close(self.window):
            if plain is not None and frames >= plain:
                break
            if screenshot is not None and max_frames is None and frames > 0 and not self.busy:
                break
            self.frame()
            frames += 1
        if screenshot is not None and not glfw.window_should_close(self.window):
            self.frame(screenshot)
            frames += 1
        return frames

    def frame(self, screenshot: str | Path | None = None) -> None:
        """One iteration: input, one bounded render step, the panel, and the swap; with
        `screenshot`, the window's pixels are written there (PNG) before the swap."""
        now = time.perf_counter()
        if self._last_frame is not None:
            self.frame_seconds = now - self._last_frame
        self._last_frame = now
        if self.busy or self._held or self.drag:
            glfw.poll_events()
        else:
            glfw.wait_events_timeout(IDLE_WAIT_SECONDS)
        self.impl.process_inputs()
        self._fly(self.frame_seconds)
        self._watch(now)
        if self._reload_next_frame:
            self._reload_next_frame = False
            self.session.reload()
            self.changed = []
            self.status = "reloaded" if self.session.error is None else "reload failed: the last good state runs on"
        else:
            self.busy = self.session.step()
        self._upload(self.session.image())

        imgui.new_frame()
        self._panel()
        self._overlay()
        imgui.render()
        fb_w, fb_h = glfw.get_framebuffer_size(self.window)
        gl.glViewport(0, 0, fb_w, fb_h)
        gl.glClearColor(0.1, 0.1, 0.1, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        self._draw_image(fb_w, fb_h)
        self.impl.render(imgui.get_draw_data())
        if screenshot is not None:
            write_png(screenshot, self.read_pixels())
        glfw.swap_buffers(self.window)

    def _watch(self, now: float) -> None:
        if now < self._next_watch:
            return
        self._next_watch = now + WATCH_INTERVAL_SECONDS
        self.changed = self.session.changed_files()
        if self.changed and self.auto_reload:
            self.request_reload()

    def request_reload(self) -> None:
        """Reloads on the next frame, so this one can show that it is happening (it blocks)."""
        self._reload_next_frame = True
        self.status = "reloading: " + ", ".join(p.name for p in self.changed) if self.changed else "reloading"

    def read_pixels(self) -> np.ndarray:
        """The window's back buffer as HxWx3 uint8, top row first."""
        w, h = glfw.get_framebuffer_size(self.window)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        data = gl.glReadPixels(0, 0, w, h, gl.GL_RGB, gl.GL_UNSIGNED_BYTE)
        return np.frombuffer(data, np.uint8).reshape(h, w, 3)[::-1].copy()

    def close(self) -> None:
        gl.glDeleteTextures([self._texture])
        gl.glDeleteVertexArrays(1, [self._vao])
        gl.glDeleteProgram(self._program)
        self.impl.shutdown()
        imgui.destroy_context()
        close_window(self.window)

    # --- drawing ----------------------------------------------------------------------------------
    def _upload(self, pixels: np.ndarray) -> None:
        if pixels is self._shown:
            return
        self._shown = pixels
        h, w = pixels.shape[:2]
        gl.glBindTexture(gl.GL_TEXTURE_2D, self._texture)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        if self._texture_size != (w, h):
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, gl.GL_LINEAR)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, gl.GL_LINEAR)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGB8, w, h, 0, gl.GL_RGB, gl.GL_UNSIGNED_BYTE,
                            np.ascontiguousarray(pixels))
            self._texture_size = (w, h)
        else:
            gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, w, h, gl.GL_RGB, gl.GL_UNSIGNED_BYTE,
                               np.ascontiguousarray(pixels))

    def _draw_image(self, fb_w: int, fb_h: int) -> None:
        win_w, win_h = glfw.get_window_size(self.window)
        sx, sy = fb_w / max(win_w, 1), fb_h / max(win_h, 1)
        x, y, w, h = self.image_rect()
        gl.glViewport(int(round(x * sx)), int(round(fb_h - (y + h) * sy)), int(round(w * sx)), int(round(h * sy)))
        gl.glUseProgram(self._program)
        gl.glActiveTexture(gl.GL_TEXTURE0)
        gl.glBindTexture(gl.GL_TEXTURE_2D, self._texture)
        gl.glUniform1i(gl.glGetUniformLocation(self._program, "image"), 0)
        gl.glBindVertexArray(self._vao)
        gl.glDrawArrays(gl.GL_TRIANGLES, 0, 3)
        gl.glBindVertexArray(0)
        gl.glUseProgram(0)
        gl.glViewport(0, 0, fb_w, fb_h)

    def _overlay(self) -> None:
        """Split view: the divider and which side is which, drawn over the render."""
        if self.session.settings.view_mode != "split":
            return
        x, y, _, h = self.image_rect()
        dx = self._divider_x()
        draw = imgui.get_background_draw_list()
        draw.add_line(imgui.ImVec2(dx, y), imgui.ImVec2(dx, y + h), WHITE, 2.0)
        switchable = [r for r in self.session.objects() if NEURAL in r.kinds and REFERENCE in r.kinds]
        left = "neural" if all(r.kind == NEURAL for r in switchable) else "as set in the panel"
        left_x = max(x + 4, dx - imgui.calc_text_size(left).x - 8)
        for text, tx in ((left, left_x), ("reference", dx + 8)):
            size = imgui.calc_text_size(text)
            draw.add_rect_filled(imgui.ImVec2(tx - 4, y + 4), imgui.ImVec2(tx + size.x + 4, y + 8 + size.y),
                                 LABEL_BACKGROUND, 3.0)
            draw.add_text(imgui.ImVec2(tx, y + 6), WHITE, text)

    # --- the panel --------------------------------------------------------------------------------
    def _panel(self) -> None:
        _, win_h = glfw.get_window_size(self.window)
        imgui.set_next_window_pos(imgui.ImVec2(0, 0), imgui.Cond_.always)
        imgui.set_next_window_size(imgui.ImVec2(PANEL_WIDTH, win_h), imgui.Cond_.always)
        flags = (imgui.WindowFlags_.no_move | imgui.WindowFlags_.no_resize | imgui.WindowFlags_.no_collapse
                 | imgui.WindowFlags_.no_saved_settings)
        imgui.begin("neumat view", None, flags)
        imgui.push_item_width(-150)
        self._panel_status()
        self._panel_render()
        self._panel_view()
        self._panel_materials()
        self._panel_files()
        self._panel_help()
        imgui.pop_item_width()
        imgui.end()

    def _panel_status(self) -> None:
        s = self.session
        imgui.text(f"{s.scene.name}  ({s.device.info.adapter_name})")
        if s.error:
            imgui.text_colored(ERROR_COLOUR, "reload failed; the last good state runs on:")
            imgui.push_text_wrap_pos(0.0)
            imgui.text_colored(ERROR_COLOUR, s.error)
            imgui.pop_text_wrap_pos()
        if self._reload_next_frame:
            imgui.text_colored(NOTE_COLOUR, self.status + " ...")

    def _panel_render(self) -> None:
        s, st = self.session, self.session.settings
        imgui.separator_text("render")
        w, h = s.size
        state = "rendering" if self.busy else "done (at the cap)"
        imgui.text(f"{s.main_spp} spp, {w}x{h}, {state}")
        if s.reference_spp is not None:
            imgui.text(f"reference: {s.reference_spp} spp (in the background)")
        fps = 1.0 / self.frame_seconds if self.frame_seconds > 0 else 0.0
        imgui.text(f"frame {1000 * self.frame_seconds:.0f} ms ({fps:.1f} fps), "
                   f"{s.samples_per_second / 1e6:.2f} M samples/s")
        changed, cap = imgui.input_int("spp cap", st.spp_cap, 16, 256)
        if changed:
            st.spp_cap = max(1, cap)
        changed, scale = imgui.slider_float("render scale", st.render_scale, 0.05, 1.0, "%.2f")
        if changed:
            st.render_scale = scale
            s.restart()
        depth = s.scene.render.max_depth if st.max_depth is None else st.max_depth
        changed, depth = imgui.slider_int("max depth", depth, 0, 16)
        if changed:
            st.max_depth = depth
            s.restart()
        _, st.exposure = imgui.slider_float("exposure", st.exposure, -8.0, 8.0, "%+.1f stops")
        names = sorted(TONEMAPPERS)
        changed, k = imgui.combo("tonemapper", names.index(st.tonemapper), names)
        if changed:
            st.tonemapper = names[k]
        if s.tracer.environment is not None:
            rot_changed, rotation = imgui.slider_float("env rotation", st.env_rotation, -180.0, 180.0, "%.0f deg")
            int_changed, intensity = imgui.slider_float("env intensity", st.env_intensity, 0.0, 4.0, "x %.2f")
            if rot_changed or int_changed:
                s.set_environment(rotation, intensity)

    def _panel_view(self) -> None:
        s, st = self.session, self.session.settings
        imgui.separator_text("view")
        for mode, label in VIEW_MODES.items():
            if imgui.radio_button(label, st.view_mode == mode):
                st.view_mode = mode
        if st.view_mode == "split":
            _, st.split = imgui.slider_float("divider", st.split, 0.0, 1.0, "%.2f")
            imgui.text_disabled("left: materials as set below; right: all reference")
        elif st.view_mode == "error" and s.flip_mean is not None:
            imgui.text(f"mean FLIP {s.flip_mean:.4f} (LDR, as displayed)")
            imgui.text_disabled("black: no visible difference, yellow: large")
        elif st.view_mode == "lod":
            imgui.text_disabled(f"mip level 0 (finest) .. {LOD_RANGE:g}; black: nothing hit")
            self._lod_legend()
        self._panel_denoise()

    def _panel_denoise(self) -> None:
        s, st = self.session, self.session.settings
        if s.denoise_error:
            imgui.text_disabled("denoise: not available")
            imgui.push_text_wrap_pos(0.0)
            imgui.text_colored(ERROR_COLOUR, s.denoise_error)
            imgui.pop_text_wrap_pos()
            return
        changed, on = imgui.checkbox("denoise (N)", st.denoise)
        if changed:
            s.set_denoise(on)
        if not st.denoise:
            return
        imgui.same_line()
        _, st.denoise_always = imgui.checkbox("always", st.denoise_always)
        if not st.denoise_always:
            changed, until = imgui.input_int("until spp", st.denoise_until_spp, 16, 64)
            if changed:
                st.denoise_until_spp = max(1, until)
        if s.denoising:
            imgui.text_disabled(f"showing the denoised image (OIDN, {s.denoise_seconds * 1000:.0f} ms)")
        elif st.view_mode not in DENOISED_MODES:
            imgui.text_disabled("this view shows raw data")
        else:
            imgui.text_disabled(f"showing the raw accumulation (past {st.denoise_until_spp} spp)")

    def _lod_legend(self) -> None:
        swatches = heatmap(np.arange(int(LOD_RANGE) + 1, dtype=np.float32)[None, :])[0] / 255.0
        for level, (r, g, b) in enumerate(swatches):
            imgui.color_button(f"level {level}", imgui.ImVec4(r, g, b, 1.0), 0, imgui.ImVec2(18, 14))
            imgui.same_line(0.0, 2.0)
        imgui.new_line()

    def _panel_materials(self) -> None:
        s = self.session
        imgui.separator_text("materials")
        if imgui.button("all neural"):
            s.set_all(NEURAL)
        imgui.same_line()
        if imgui.button("all reference"):
            s.set_all(REFERENCE)
        missing: dict[str, str] = {}
        if not imgui.begin_table("objects", 3, imgui.TableFlags_.sizing_fixed_fit):
            return
        for row in s.objects():
            imgui.push_id(row.index)
            imgui.table_next_row()
            imgui.table_next_column()
            imgui.text(row.name)
            imgui.table_next_column()
            imgui.text_disabled(row.material)
            imgui.table_next_column()
            if NEURAL in row.kinds and REFERENCE in row.kinds:
                if imgui.radio_button("neural", row.kind == NEURAL):
                    s.set_kind(row.index, NEURAL)
                imgui.same_line()
                if imgui.radio_button("reference", row.kind == REFERENCE):
                    s.set_kind(row.index, REFERENCE)
            else:
                imgui.text_disabled(f"{row.kind} only")
                if row.reason:
                    imgui.set_item_tooltip(row.reason)
                    missing.setdefault(row.material, row.reason)
            imgui.pop_id()
        imgui.end_table()
        if missing and imgui.collapsing_header(f"why reference only ({len(missing)} materials)",
                                               imgui.TreeNodeFlags_.default_open):
            imgui.push_text_wrap_pos(0.0)
            for material, reason in missing.items():
                imgui.text_disabled(f"{material}: {reason}")
            imgui.pop_text_wrap_pos()

    def _panel_files(self) -> None:
        imgui.separator_text("files")
        if imgui.button("screenshot (PNG + EXR)"):
            try:
                paths = self.session.save_screenshot(self.screenshot_dir)
                self.status = "saved " + ", ".join(str(p) for p in paths)
            except NeumatError as exc:
                self.status = f"screenshot failed: {exc}"
        imgui.same_line()
        if imgui.button("reload"):
            self.request_reload()
        imgui.same_line()
        _, self.auto_reload = imgui.checkbox("auto", self.auto_reload)
        if self.changed and not self._reload_next_frame:
            imgui.text_colored(NOTE_COLOUR, "changed on disk: " + ", ".join(p.name for p in self.changed))
        if self.status and not self._reload_next_frame:
            imgui.push_text_wrap_pos(0.0)
            imgui.text_disabled(self.status)
            imgui.pop_text_wrap_pos()

    def _panel_help(self) -> None:
        if imgui.collapsing_header("controls"):
            imgui.text_disabled("left drag: orbit    middle / shift+left drag: pan\n"
                                "wheel: zoom    W A S D (Q E): fly    R: reset camera\n"
                                "N: denoise on / off\n"
                                "split view: drag the divider")
