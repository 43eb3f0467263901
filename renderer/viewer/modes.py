"""The viewer's view modes (name -> panel label) and the settings its panel controls: here, not in
session.py, so that `neumat view --help` lists them and states their defaults without importing the
path tracer (slangpy, torch)."""

from dataclasses import dataclass

VIEW_MODES = {
    "beauty": "beauty",
    "split": "split: neural | reference",
    "error": "FLIP error vs reference",
    "lod": "level of detail",
    "normals": "normals",
}


@dataclass
class ViewSettings:
    """What the panel controls; `max_depth` and `env_rotation` None mean the scene's own."""

    render_scale: float = 0.25          # of the scene camera's resolution
    spp_cap: int = 256
    max_depth: int | None = None
    exposure: float = 0.0
    tonemapper: str = "aces"
    view_mode: str = "beauty"
    split: float = 0.5                  # divider position in the split view, 0 (left) .. 1 (right)
    env_rotation: float | None = None   # degrees about +y
    env_intensity: float = 1.0          # factor on the scene's environment radiance
    seed: int = 0
    denoise: bool = True                # show the denoised image while the view is young (see below)
    denoise_always: bool = False        # ... or at every sample count
    denoise_until_spp: int = 64         # "while moving": until the still view has this many spp
