"""The viewer's render state, without any window or GL: the path tracer of a scene with both kinds
of every object's material bound, the progressive accumulation of the view and of an all-reference
image in the background (for the split and error views), view modes, screenshots and reloading
changed files, and the denoised view (renderer/images/denoise.py: Open Image Denoise on the
accumulated image and its albedo and normal AOVs).

`step()` does one bounded piece of work (one dispatch sized to FRAME_BUDGET_SECONDS), so a window
can call it once per frame and stay responsive; `image()` is what the view shows, as sRGB uint8.
"""

import math
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import neumat.renderer.scene.scene_file as scene_module
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.heartbeat import heartbeat
from neumat.renderer.images.io import to_display, write_image, write_png
from neumat.renderer.images.metrics import ldr_flip_error
from neumat.renderer.pathtracer.tracer import Accumulator, PathTracer, RenderResult, prepare_render
from neumat.renderer.scene.scene_file import REFERENCE, NEURAL, Scene, find_scene, load_scene
from neumat.renderer.viewer.camera import OrbitCamera
from neumat.renderer.viewer.modes import VIEW_MODES, ViewSettings

FRAME_BUDGET_SECONDS = 0.1      # the longest dispatch step() aims for: the window stays responsive
FLIP_INTERVAL_SECONDS = 1.0     # the error view recomputes FLIP at most this often
# OIDN for the view (renderer/images/denoise.py): "fast" takes half the time of "high" and the
# guides go in as they are, "noisy" (prefiltering them would cost 4x); docs/viewer.md, "Denoising".
DENOISE_QUALITY, DENOISE_AUX = "fast", "noisy"
DENOISED_MODES = ("beauty", "split")  # the error, lod and normals views show the raw data
LOD_RANGE = 10.0                # the heatmap's top colour (a 1024-texel texture has levels 0..10)
AUTO_SCALES = (1.0, 0.75, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2, 0.15, 0.1)
PROBE_SCALE = 0.1               # render scale of the calibration dispatches
# Turbo-like heatmap stops: dark blue (finest level) .. dark red (coarsest).
_HEAT = np.array([[0.19, 0.07, 0.23], [0.16, 0.47, 0.93], [0.10, 0.86, 0.72], [0.63, 0.99, 0.24],
                  [0.98, 0.60, 0.13], [0.48, 0.02, 0.01]])


@dataclass
class ObjectRow:
    """One object with a surface material, as the panel lists it."""

    index: int
    name: str
    material: str
    kinds: tuple[str, ...]
    kind: str
    reason: str | None                  # why it is reference-only (None: it can be switched)


def heatmap(lod: np.ndarray) -> np.ndarray:
    """The lod AOV as colours (uint8 HxWx3): levels 0..LOD_RANGE blue to red; black where nothing
    was hit (lod -1)."""
    t = np.clip(lod / LOD_RANGE, 0.0, 1.0) * (len(_HEAT) - 1)
    stops = np.arange(len(_HEAT))
    rgb = np.stack([np.interp(t, stops, _HEAT[:, c]) for c in range(3)], axis=-1)
    rgb[lod < 0] = 0.0
    return np.round(rgb * 255.0).astype(np.uint8)


def _signature(path: Path):
    """What changes when a watched file or asset folder is rewritten (None: it is not there)."""
    try:
        if path.is_dir():
            return tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()))
        st = path.stat()
        return st.st_mtime_ns, st.st_size
    except OSError:  # missing, or replaced while we looked
        return None


class ViewerSession:
    """A scene on the device for interactive viewing; see the module doc."""

    def __init__(self, device, scene: str | Path, settings: ViewSettings | None = None,
                 log: Callable[[str], None] | None = None, mlp: str = "auto"):
        self.device = device
        self.mlp = mlp  # the neural decoders' code path (renderer/neural/codegen.py MLP_PATHS)
        self.scene_path = find_scene(scene).resolve()
        self.settings = settings or ViewSettings()
        self.log = log
        self.error: str | None = None       # the last failed reload, shown in the panel
        self.samples_per_second = 0.0       # pixel samples per second of recent dispatches
        self.flip_mean: float | None = None
        if self.settings.spp_cap < 1:
            raise NeumatError(f"the samples-per-pixel cap must be >= 1, got {self.settings.spp_cap}")
        if self.settings.denoise_until_spp < 1:
            raise NeumatError(f"the denoise-until sample count must be >= 1, got {self.settings.denoise_until_spp}")
        self.tracer: PathTracer
        self._signatures: dict[Path, object] = {}
        self._seconds_per_path: float | None = None  # of the last dispatch: sizes the next one
        self._results: dict[tuple, RenderResult] = {}
        self._flip: tuple | None = None              # (inputs, time, map) of the error view
        self._image: tuple | None = None             # (inputs, pixels) of the other views
        self._reference_kinds_used: list | None = None
        self._denoiser = None                        # created on first use (loads OIDN)
        self._denoised: dict[tuple, np.ndarray] = {}  # (accumulator, spp, columns) -> linear image
        self.denoise_error: str | None = None        # why denoising is not available (then it is off)
        self.denoise_seconds = 0.0                   # OIDN's time for the last denoised view
        self.scene: Scene
        self._build(first=True)
        self.orbit = OrbitCamera(self.scene.camera)
        if self.settings.env_rotation is None:
            self.settings.env_rotation = self.scene.environment.rotation
        self._apply_environment()
        self.restart()

    # --- building and reloading -------------------------------------------------------------------
    def _build(self, first: bool) -> None:
        """Loads the scene and compiles its path tracer; on success replaces the current ones.
        Object kinds: neural where there is an asset, except that a reload keeps what the person
        chose for objects that could be switched before (by object name)."""
        signatures_before = {p: _signature(p) for p in self._signatures}
        scene = load_scene(self.scene_path)
        tracer, _ = prepare_render(self.device, scene, "per-object", log=self.log, switchable=True, mlp=self.mlp)
        if self.log:
            self.log("compiling the path tracer (the first time on lavapipe: minutes; later runs read the shader cache)")
        with heartbeat("  still compiling") if self.log else nullcontext():
            tracer.compile()
        old = {} if first else {o.name: k for i, (o, k) in enumerate(zip(self.scene.objects, self.tracer.object_kinds))
                                if len(self.tracer.kinds_available(i)) > 1}
        for i, obj in enumerate(scene.objects):
            kinds = tracer.kinds_available(i)
            want = old.get(obj.name, NEURAL)
            if want in kinds:
                tracer.set_object_kind(i, want)
        self.scene, self.tracer = scene, tracer
        watched = self._watched_paths()
        self._signatures = {p: signatures_before.get(p, _signature(p)) for p in watched}

    def _watched_paths(self) -> list[Path]:
        """The scene file, its material graphs, its bound assets, and where the missing assets of
        reference-only objects would appear (a bake finishing while the viewer runs)."""
        a = self.tracer.assignment
        paths = [self.scene_path, *a.files, *a.assets]
        for i in a.unavailable:
            m = self.scene.objects[i].material
            name = self.tracer.material_names[a.object_choices[i][REFERENCE]]
            paths.append(m.asset if m.asset is not None else scene_module.NEURAL_ASSET_DIR / f"{name}.neumat")
        return list(dict.fromkeys(paths))

    def changed_files(self) -> list[Path]:
        """Watched files that changed on disk since the last build or reload attempt."""
        return [p for p, sig in self._signatures.items() if _signature(p) != sig]

    def reload(self) -> bool:
        """Rebuilds everything from the files on disk. On failure (a broken material graph, a shader
        that does not compile, ...) keeps the current state running, puts the error text in
        `self.error` and returns False; the same files are not retried until they change again."""
        try:
            self._build(first=False)
        except Exception as exc:  # noqa: BLE001 - any failure must leave the last good state running
            self._signatures = {p: _signature(p) for p in self._signatures}
            if isinstance(exc, NeumatError):
                self.error = str(exc)
            else:
                self.error = f"{type(exc).__name__}: {exc}"
                traceback.print_exc(file=sys.stderr)
            return False
        self.error = None
        self._apply_environment()
        self.restart()
        return True

    # --- objects and settings ---------------------------------------------------------------------
    def objects(self) -> list[ObjectRow]:
        t = self.tracer
        rows = []
        for i, obj in enumerate(self.scene.objects):
            choices = t.assignment.object_choices[i]
            kind = t.object_kinds[i]
            if kind is None:
                continue  # no surface: an emitter only
            material = t.material_names[choices[kind] + (t.neural_id_base if kind == NEURAL else 0)]
            rows.append(ObjectRow(i, obj.name, material, t.kinds_available(i), kind, t.assignment.unavailable.get(i)))
        return rows

    def set_kind(self, index: int, kind: str) -> None:
        """Shows object `index` with its neural or reference material (the background reference
        image stays valid)."""
        if self.tracer.object_kinds[index] != kind:
            self.tracer.set_object_kind(index, kind)
            self.main = None

    def set_all(self, kind: str) -> None:
        for row in self.objects():
            if kind in row.kinds:
                self.set_kind(row.index, kind)

    def _apply_environment(self) -> None:
        if self.tracer.environment is not None:
            self.tracer.set_environment(self.settings.env_rotation, self.settings.env_intensity)

    def set_environment(self, rotation: float, intensity: float) -> None:
        self.settings.env_rotation, self.settings.env_intensity = rotation, intensity
        self._apply_environment()
        self.restart()

    @property
    def size(self) -> tuple[int, int]:
        """The render resolution: the scene camera's times the render scale."""
        cam, s = self.scene.camera, self.settings.render_scale
        return max(1, round(cam.width * s)), max(1, round(cam.height * s))

    def restart(self) -> None:
        """Starts accumulating again (after a camera or settings change)."""
        self.main = None
        self.reference = None

    # --- accumulation -----------------------------------------------------------------------------
    def _accumulator(self, kinds: list) -> Accumulator:
        self.scene.camera = self.orbit.camera(self.scene.camera)
        w, h = self.size
        s = self.settings
        return Accumulator(self.tracer, w, h, seed=s.seed, max_depth=s.max_depth, kinds=kinds)

    def _reference_kinds(self) -> list:
        return self.tracer.kinds_for(REFERENCE)

    def needs_reference(self) -> bool:
        """The split and error views compare with an all-reference image; it is a separate
        accumulation unless every object is on reference already."""
        return (self.settings.view_mode in ("split", "error")
                and self._reference_kinds() != list(self.tracer.object_kinds))

    def step(self) -> bool:
        """Adds one dispatch of samples to the view (or to the background reference, whichever has
        fewer); False when everything is at the cap."""
        if self.main is None:
            self.main = self._accumulator(list(self.tracer.object_kinds))
            self._results = {}
            self.flip_mean, self._flip = None, None
        targets = [self.main]
        if self.needs_reference():
            if self.reference is None or self._reference_kinds_used != self._reference_kinds():
                self._reference_kinds_used = self._reference_kinds()
                self.reference = self._accumulator(self._reference_kinds_used)
                self._flip = None
            targets.append(self.reference)
        acc = min(targets, key=lambda a: a.spp)
        cap = self.settings.spp_cap
        if acc.spp >= cap:
            return False
        pixels = acc.width * acc.height
        per_path = self._seconds_per_path
        # What the last frame's denoising took comes off this frame's budget.
        seconds_left = FRAME_BUDGET_SECONDS - (self.denoise_seconds if self.denoising else 0.0)
        budget = int(seconds_left / (per_path * pixels)) if per_path else 1
        count = max(1, min(budget, cap - acc.spp, self.tracer.samples_per_dispatch(acc.width, acc.height)))
        start = time.perf_counter()
        acc.add(count)
        seconds = time.perf_counter() - start
        self._seconds_per_path = seconds / (count * pixels)
        rate = count * pixels / max(seconds, 1e-9)
        self.samples_per_second = rate if not self.samples_per_second else 0.7 * self.samples_per_second + 0.3 * rate
        return True

    def calibrate_scale(self) -> float:
        """The largest of AUTO_SCALES whose one sample per pixel fits FRAME_BUDGET_SECONDS, from
        two probe dispatches at PROBE_SCALE (the faster counts: the first may warm caches)."""
        cam = self.scene.camera
        w, h = max(1, round(cam.width * PROBE_SCALE)), max(1, round(cam.height * PROBE_SCALE))
        self.scene.camera = self.orbit.camera(cam)
        probe = Accumulator(self.tracer, w, h, seed=self.settings.seed, max_depth=self.settings.max_depth)
        best = math.inf
        for _ in range(2):
            start = time.perf_counter()
            probe.add(1)
            best = min(best, time.perf_counter() - start)
        per_path = best / (w * h)
        self._seconds_per_path = per_path
        fits = [s for s in AUTO_SCALES if per_path * cam.width * cam.height * s * s <= FRAME_BUDGET_SECONDS]
        return fits[0] if fits else AUTO_SCALES[-1]

    @property
    def main_spp(self) -> int:
        return self.main.spp if self.main is not None else 0

    @property
    def reference_spp(self) -> int | None:
        """Samples per pixel of the reference image the split and error views use (None: none)."""
        if self.settings.view_mode not in ("split", "error"):
            return None
        if not self.needs_reference():
            return self.main_spp
        return self.reference.spp if self.reference is not None else 0

    def _result(self, acc: Accumulator) -> RenderResult:
        key = (acc, acc.spp)  # the accumulator itself, not its id: ids of dropped ones come back
        if key not in self._results:
            self._results = {k: v for k, v in self._results.items() if k[0] is not acc}
            self._results[key] = acc.result()
        return self._results[key]

    def main_result(self) -> RenderResult:
        if self.main is None or self.main.spp == 0:
            self.step()
        return self._result(self.main)

    def reference_result(self) -> RenderResult:
        if not self.needs_reference():
            return self.main_result()
        while self.reference is None or self.reference.spp == 0:
            self.step()
        return self._result(self.reference)

    # --- denoising --------------------------------------------------------------------------------
    @property
    def denoising(self) -> bool:
        """Whether the view shows denoised images now: denoising on, the beauty or split view, and
        the view young (fewer than `denoise_until_spp` samples per pixel since the camera or a
        setting last changed: "while moving") or `denoise_always`. The split view denoises both
        sides, each with its own AOVs."""
        st = self.settings
        if not st.denoise or st.view_mode not in DENOISED_MODES:
            return False
        return st.denoise_always or self.main_spp < st.denoise_until_spp

    def _denoised_columns(self, acc: Accumulator, start: int, stop: int) -> np.ndarray:
        """The linear image of `acc` in columns [start, stop), denoised from the same columns of its
        beauty, albedo and normal (once per sample count: a split view denoises each side's columns
        only, so it costs one image too)."""
        key = (acc, acc.spp, start, stop)
        if key not in self._denoised:
            result = self._result(acc)
            h = result.image.shape[0]
            if stop <= start:
                image = np.zeros((h, 0, 3), np.float32)
            else:
                if self._denoiser is None:
                    from neumat.renderer.images.denoise import Denoiser

                    self._denoiser = Denoiser(DENOISE_QUALITY, DENOISE_AUX)
                columns = slice(start, stop)
                image = self._denoiser(result.image[:, columns], result.aovs["albedo"][:, columns],
                                       result.aovs["normal"][:, columns])
                self.denoise_seconds += self._denoiser.seconds
            live = (self.main, self.reference)
            self._denoised = {k: v for k, v in self._denoised.items()
                              if k[0] is not acc and any(k[0] is a for a in live) and k[0].spp == k[1]}
            self._denoised[key] = image
        return self._denoised[key]

    def denoised_image(self) -> np.ndarray | None:
        """The linear denoised beauty of the view (HxWx3 float32) when the beauty view shows one,
        else None."""
        if not self.denoising or self.settings.view_mode != "beauty":
            return None
        result = self.main_result()
        return self._denoised_columns(self.main, 0, result.image.shape[1])

    def set_denoise(self, on: bool) -> None:
        """Turns the denoised view on or off (it stays off when OIDN is not available)."""
        self.settings.denoise = bool(on) and self.denoise_error is None

    # --- what the view shows ----------------------------------------------------------------------
    def _display(self, result: RenderResult | np.ndarray) -> np.ndarray:
        linear = result if isinstance(result, np.ndarray) else result.image
        return to_display(linear, self.settings.exposure, self.settings.tonemapper)

    def _flip_map(self) -> np.ndarray:
        """The FLIP map of the view against the reference, recomputed at most every
        FLIP_INTERVAL_SECONDS (LDR-FLIP of the displayed images)."""
        now = time.perf_counter()
        key = (self.main_spp, self.reference_spp, self.settings.exposure, self.settings.tonemapper)
        if self._flip is None or (key != self._flip[0] and now - self._flip[1] >= FLIP_INTERVAL_SECONDS):
            reference = self._display(self.reference_result()).astype(np.float32) / 255.0
            test = self._display(self.main_result()).astype(np.float32) / 255.0
            error_map, self.flip_mean = ldr_flip_error(reference, test)
            self._flip = (key, now, np.round(np.clip(error_map, 0.0, 1.0) * 255.0).astype(np.uint8))
        return self._flip[2]

    def image(self) -> np.ndarray:
        """The current view as sRGB uint8 HxWx3 at the render resolution: the same array object
        until something it depends on changes (a window uploads it only then)."""
        mode = self.settings.view_mode
        if mode not in VIEW_MODES:
            raise NeumatError(f"unknown view mode '{mode}' (known: {', '.join(VIEW_MODES)})")
        result = self.main_result()
        if mode == "error":
            return self._flip_map()
        st = self.settings
        denoised = self.denoising
        key = (mode, self.main, self.main_spp, self.reference, self.reference_spp, st.exposure, st.tonemapper,
               st.split, denoised)
        if self._image is not None and self._image[0] == key:
            return self._image[1]
        if denoised:
            try:
                image = self._denoised_view(result)
            except NeumatError as exc:  # OIDN missing or failing: say so in the panel, show the raw view
                self.denoise_error = str(exc)
                st.denoise = False
                return self.image()
        elif mode == "beauty":
            image = self._display(result)
        elif mode == "split":
            left, right = self._display(result), self._display(self.reference_result())
            column = int(round(st.split * left.shape[1]))
            image = np.concatenate([left[:, :column], right[:, column:]], axis=1)
        elif mode == "lod":
            image = heatmap(result.aovs["lod"])
        else:
            image = np.round(np.clip(0.5 + 0.5 * result.aovs["normal"], 0.0, 1.0) * 255.0).astype(np.uint8)
        self._image = (key, image)
        return image

    def _denoised_view(self, result: RenderResult) -> np.ndarray:
        """The beauty or split view from denoised images; `denoise_seconds` says what OIDN took."""
        self.denoise_seconds = 0.0
        width = result.image.shape[1]
        if self.settings.view_mode == "beauty":
            return self._display(self._denoised_columns(self.main, 0, width))
        self.reference_result()  # accumulates the reference's first samples if needed
        reference = self.reference if self.needs_reference() else self.main
        column = int(round(self.settings.split * width))
        left = self._denoised_columns(self.main, 0, column)
        right = self._denoised_columns(reference, column, width)
        return self._display(np.concatenate([left, right], axis=1))

    def save_screenshot(self, folder: str | Path) -> list[Path]:
        """Writes the view as shown (PNG, render resolution; denoised when the view is) and the raw
        linear beauty image (EXR) to `folder` as <scene>-<view mode>-<spp>spp-<time>.png / .exr;
        when the beauty view shows a denoised image, that goes beside them as .denoised.exr."""
        folder = Path(folder)
        stem = f"{self.scene.name}-{self.settings.view_mode}-{self.main_spp}spp-{time.strftime('%Y%m%d-%H%M%S')}"
        png = write_png(folder / f"{stem}.png", self.image())
        exr = write_image(folder / f"{stem}.exr", self.main_result().image)
        denoised = self.denoised_image()
        if denoised is None:
            return [png, exr]
        return [png, exr, write_image(folder / f"{stem}.denoised.exr", denoised)]
