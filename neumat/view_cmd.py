"""`neumat view [SCENE]`: the interactive viewer (renderer/viewer). Without a display it stops at
once with exit code 2 and says to use `neumat render` (or a virtual display) instead.

`--frames` and `--screenshot` script a run (documentation images, tests): render, write the window
(render and panel) as a PNG, exit.
"""

import argparse
import sys
from contextlib import nullcontext
from pathlib import Path

from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.heartbeat import heartbeat

DEFAULT_SCENE = "stage"
DEFAULT_WINDOW = (1280, 720)
DENOISE_CHOICES = ("moving", "always", "off")


def _window_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    if not (320 <= w <= 16384 and 240 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"the window must be at least 320x240, got {text}")
    return w, h


def _render_scale(text: str) -> float | None:
    if text == "auto":
        return None
    try:
        scale = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1] or auto, got {text!r}") from None
    if not 0.0 < scale <= 1.0:
        raise argparse.ArgumentTypeError(f"the render scale must be in (0, 1], got {text}")
    return scale


def cmd_view(args: argparse.Namespace) -> int:
    from neumat.renderer.core.device import create_device
    from neumat.renderer.images.io import TONEMAPPERS, check_output_path
    from neumat.renderer.scene.scene_file import find_scene
    from neumat.renderer.viewer.modes import ViewSettings
    from neumat.renderer.viewer.session import ViewerSession

    scene_path = find_scene(args.scene)
    if args.screenshot:
        check_output_path(args.screenshot, (".png",))
    if not Path(args.screenshot_dir).is_dir():
        raise NeumatError(f"--screenshot-dir: no such folder {args.screenshot_dir}")
    if args.spp_cap < 1:
        raise NeumatError(f"--spp-cap must be >= 1, got {args.spp_cap}")
    if args.max_depth is not None and args.max_depth < 0:
        raise NeumatError(f"--max-depth must be >= 0, got {args.max_depth}")
    if not 0 <= args.seed < 2**32:
        raise NeumatError(f"--seed must be in [0, 2^32), got {args.seed}")
    if args.frames is not None and args.frames < 1:
        raise NeumatError(f"--frames must be >= 1, got {args.frames}")
    if args.tonemapper not in TONEMAPPERS:
        raise NeumatError(f"unknown tonemapper {args.tonemapper}")

    from neumat.renderer.viewer.window import Viewer, close_window, open_window

    window = open_window(*args.size, f"neumat view: {scene_path.stem}", args.scene)

    def log(message: str) -> None:
        print(f"neumat view: {message}", file=sys.stderr, flush=True)

    try:
        settings = ViewSettings(render_scale=args.render_scale or 1.0, spp_cap=args.spp_cap, max_depth=args.max_depth,
                                exposure=args.exposure, tonemapper=args.tonemapper, view_mode=args.view_mode,
                                seed=args.seed, denoise=args.denoise != "off", denoise_always=args.denoise == "always")
        device = create_device(args.device)
        log(f"loading {scene_path} on {device.info.adapter_name}: material graphs, neural assets and the path "
            "tracer's compilation (on lavapipe the first run with a new set of assets compiles for a minute or more)")
        # Without -v the session logs nothing, so the first (cold) compile gets its heartbeat here.
        with heartbeat("neumat view: still loading and compiling") if not args.verbose else nullcontext():
            session = ViewerSession(device, scene_path, settings, log=log if args.verbose else None, mlp=args.mlp)
        missing: dict[str, list] = {}
        for row in session.objects():
            if row.reason:
                missing.setdefault(row.material, []).append(row)
        for material, rows in missing.items():
            log(f"{material} ({', '.join(r.name for r in rows)}): reference only: {rows[0].reason}")
        if args.render_scale is None:
            settings.render_scale = session.calibrate_scale()
            w, h = session.size
            log(f"render scale {settings.render_scale:g} ({w}x{h}): one sample per pixel fits a frame")
        viewer = Viewer(window, session, args.screenshot_dir)
    except BaseException:
        close_window(window)
        raise
    try:
        viewer.run(args.frames, args.screenshot)
    finally:
        viewer.close()
    if args.screenshot:
        print(f"wrote {args.screenshot}: {session.scene.name}, view {settings.view_mode}, {session.main_spp} spp")
    return 0


def add_view_parser(sub, add_device_flag, add_display_flags) -> None:
    """Registers `neumat view` on the subparsers `sub` of the neumat command."""
    from neumat.renderer.neural.codegen import MLP_PATHS
    from neumat.renderer.viewer.modes import VIEW_MODES, ViewSettings

    defaults = ViewSettings()
    p = sub.add_parser("view", help="interactive viewer: orbit a scene, flip materials between neural and reference",
                       description="Opens a window on a scene (default: the built-in stage with the pre-baked "
                                   "neural materials) and path-traces it progressively. Needs a display; "
                                   "without one, use `neumat render`.")
    p.add_argument("scene", metavar="SCENE", nargs="?", default=DEFAULT_SCENE,
                   help=f"a scene .toml file or the name of a built-in scene (default: {DEFAULT_SCENE})")
    p.add_argument("--render-scale", type=_render_scale, default=None, metavar="S",
                   help="render resolution as a fraction of the scene camera's, in (0, 1]; default auto: "
                        "the largest step (1, 0.75, 0.5, ..., 0.1) at which one sample per pixel takes "
                        "at most 0.1 s on this device")
    p.add_argument("--spp-cap", type=int, default=defaults.spp_cap,
                   help=f"stop accumulating at this many samples per pixel (default {defaults.spp_cap})")
    p.add_argument("--max-depth", type=int, default=None, help="maximum scattering events per path "
                                                               "(default: the scene's)")
    p.add_argument("--view-mode", choices=list(VIEW_MODES), default=defaults.view_mode,
                   help=f"the view at start (default {defaults.view_mode})")
    p.add_argument("--seed", type=int, default=defaults.seed, help=f"random seed (default {defaults.seed})")
    p.add_argument("--denoise", choices=DENOISE_CHOICES, default="moving",
                   help="show the image denoised by Open Image Denoise: while moving (default: from a camera or "
                        f"setting change until {defaults.denoise_until_spp} spp), always, or off; the N key toggles it")
    p.add_argument("--size", type=_window_size, default=DEFAULT_WINDOW, metavar="WxH",
                   help="window size (default 1280x720)")
    p.add_argument("--screenshot-dir", default=".", metavar="DIR",
                   help="where the panel's screenshot button writes PNG + EXR (default: here)")
    p.add_argument("--frames", type=int, default=None, metavar="N", help="quit after N frames (scripted runs)")
    p.add_argument("--screenshot", default=None, metavar="PATH.png",
                   help="render until the spp cap (or --frames), write the window (render and panel) as PNG, quit")
    p.add_argument("--mlp", choices=MLP_PATHS, default="auto",
                   help="neural decoders' code path (as for neumat render): buffer compiles once for any assets "
                        "and reloads without compiling, loop and coopvec render faster once compiled; auto: "
                        "coopvec where available, else loop")
    p.add_argument("-v", "--verbose", action="store_true", help="report loading steps")
    add_display_flags(p)
    add_device_flag(p)
    p.set_defaults(func=cmd_view)
