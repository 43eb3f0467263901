"""The viewer's camera controls as plain math on renderer.scene.scene_file.Camera (no window, no GL), so they
are unit-testable: orbit about a target, pan in the image plane, zoom towards the target, WASD
fly, and reset to the scene file's camera.

The camera sits at `distance` from `target`, at `yaw` about the scene's up vector and `pitch`
above the plane perpendicular to it; both angles are radians (degrees only in the constants a
person tunes). Pitch stays inside +-MAX_PITCH so the view direction never lines up with up, which
Camera.basis could not handle.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from neumat.renderer.scene.scene_file import Camera

ORBIT_RADIANS_PER_PIXEL = math.radians(0.3)
ZOOM_PER_STEP = 0.85           # distance factor per wheel notch (towards the target)
MIN_DISTANCE = 1e-3
MAX_PITCH = math.radians(89.0)
FLY_SPEED = 0.5                # of the scene camera's distance to its target, per second


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


@dataclass
class OrbitState:
    target: np.ndarray
    distance: float
    yaw: float
    pitch: float


class OrbitCamera:
    """Orbit / pan / zoom / fly state around a scene camera; `camera()` gives the Camera to render."""

    def __init__(self, camera: Camera):
        self.base = camera
        self.up = _unit(np.asarray(camera.up, np.float64))
        offset = np.asarray(camera.position, np.float64) - np.asarray(camera.target, np.float64)
        distance = float(np.linalg.norm(offset))
        if distance < MIN_DISTANCE:
            raise ValueError("the camera's position and target coincide")
        # The yaw-0 direction: the initial offset flattened onto the plane perpendicular to up (any
        # perpendicular direction when the camera looks straight along up).
        flat = offset - np.dot(offset, self.up) * self.up
        if np.linalg.norm(flat) < 1e-9 * distance:
            flat = np.cross(self.up, [1.0, 0.0, 0.0])
            if np.linalg.norm(flat) < 1e-9:
                flat = np.cross(self.up, [0.0, 0.0, 1.0])
        self.e1 = _unit(flat)
        self.e2 = np.cross(self.up, self.e1)
        pitch = math.asin(float(np.clip(np.dot(offset / distance, self.up), -1.0, 1.0)))
        self.home = OrbitState(np.asarray(camera.target, np.float64).copy(), distance, 0.0,
                               float(np.clip(pitch, -MAX_PITCH, MAX_PITCH)))
        self.state = replace(self.home, target=self.home.target.copy())

    # --- what to render ---------------------------------------------------------------------------
    def position(self) -> np.ndarray:
        s = self.state
        horizontal = math.cos(s.yaw) * self.e1 + math.sin(s.yaw) * self.e2
        return s.target + s.distance * (math.cos(s.pitch) * horizontal + math.sin(s.pitch) * self.up)

    def camera(self, base: Camera | None = None) -> Camera:
        """`base` (default: the camera this started from: fov, resolution) at the current pose."""
        return replace(base or self.base, position=self.position(), target=self.state.target.copy(),
                       up=self.up.copy())

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(forward, right, up) of the current view."""
        return self.camera().basis()

    # --- controls ---------------------------------------------------------------------------------
    def orbit(self, dx: float, dy: float) -> None:
        """A drag of (dx, dy) pixels (y down) turns the scene with the mouse: right turns it right
        (the camera moves left), down tilts its top towards the viewer (the camera rises)."""
        s = self.state
        s.yaw -= dx * ORBIT_RADIANS_PER_PIXEL
        s.pitch = float(np.clip(s.pitch + dy * ORBIT_RADIANS_PER_PIXEL, -MAX_PITCH, MAX_PITCH))

    def pan(self, dx: float, dy: float, viewport_height: float) -> None:
        """Moves camera and target so that the point under the cursor at the target's depth follows a
        drag of (dx, dy) pixels in a viewport `viewport_height` pixels tall."""
        _, right, up = self.basis()
        per_pixel = 2.0 * self.state.distance * math.tan(math.radians(self.base.fov) * 0.5) / max(viewport_height, 1.0)
        self.state.target = self.state.target + per_pixel * (-dx * right + dy * up)

    def zoom(self, steps: float) -> None:
        """Wheel notches: positive moves towards the target (never through it)."""
        self.state.distance = max(MIN_DISTANCE, self.state.distance * ZOOM_PER_STEP ** steps)

    def fly(self, forward: float, right: float, up: float, seconds: float) -> None:
        """Moves camera and target together: each of forward/right/up is -1, 0 or 1 (W/S, D/A, E/Q),
        at FLY_SPEED times the scene camera's target distance per second."""
        f, r, _ = self.basis()
        step = FLY_SPEED * self.home.distance * seconds
        self.state.target = self.state.target + step * (forward * f + right * r + up * self.up)

    def reset(self) -> None:
        self.state = replace(self.home, target=self.home.target.copy())
