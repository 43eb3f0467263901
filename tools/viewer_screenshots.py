#!/usr/bin/env python3
"""Writes the README's viewer screenshots: docs/images/viewer-<mode>.png, the whole window (render
and panel) of `neumat view` on a scene in each view mode. The view and its all-reference
counterpart are accumulated once, to --spp samples per pixel, and every view mode is shot from
them. Without a display the script runs itself again under `xvfb-run`.

    .venv/bin/python tools/viewer_screenshots.py                 # stage, 64 spp, render scale 0.5
    .venv/bin/python tools/viewer_screenshots.py --spp 16 --render-scale 0.25 --out /tmp/shots
"""

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from neumat.renderer.core.device import create_device  # noqa: E402
from neumat.renderer.viewer.session import VIEW_MODES, ViewerSession, ViewSettings  # noqa: E402

WINDOW = (1280, 720)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", default="stage", help="scene file or built-in name (default stage)")
    parser.add_argument("--spp", type=int, default=64, help="samples per pixel of both images (default 64)")
    parser.add_argument("--render-scale", type=float, default=0.5, help="of the scene camera's resolution "
                                                                         "(default 0.5)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder (default docs/images)")
    parser.add_argument("--device", default=None, help="Vulkan adapter, as for neumat")
    args = parser.parse_args()
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        if shutil.which("xvfb-run") is None:
            sys.exit("viewer_screenshots: no display and no xvfb-run (install the xvfb package)")
        screen = f"-screen 0 {WINDOW[0]}x{WINDOW[1]}x24"
        os.execvp("xvfb-run", ["xvfb-run", "-a", "-s", screen, sys.executable, __file__, *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)

    from neumat.renderer.viewer.window import Viewer, open_window

    window = open_window(*WINDOW, "neumat view", args.scene)
    start = time.perf_counter()
    settings = ViewSettings(render_scale=args.render_scale, spp_cap=args.spp, view_mode="split")
    session = ViewerSession(create_device(args.device), args.scene, settings,
                            log=lambda m: print(f"  {m}", file=sys.stderr))
    viewer = Viewer(window, session)
    print(f"loaded in {time.perf_counter() - start:.0f} s; accumulating {args.spp} spp at "
          f"{'x'.join(map(str, session.size))} (and the reference)", file=sys.stderr)
    start = time.perf_counter()
    frames = 0
    while True:
        viewer.frame()
        frames += 1
        if not viewer.busy:
            break
    seconds = time.perf_counter() - start
    print(f"{frames} frames in {seconds:.0f} s ({frames / seconds:.1f} fps)", file=sys.stderr)
    for mode in VIEW_MODES:
        settings.view_mode = mode
        viewer.frame()
        path = args.out / f"viewer-{mode}.png"
        viewer.frame(path)
        print(f"wrote {path}")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
