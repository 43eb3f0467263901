"""Whole frames of the stage scene, for comparing one change of the renderer with the next: in one run,
the reference and the neural materials' ms per sample per pixel at equal spp (alternating renders,
medians) and their ratio, then the viewer's frame rate at its default (auto) render scale.

- Stage renders: `neumat compare stage`'s path tracer (renderer/compare/stage.switchable_tracer: both
  kinds of every material bound, compiled once), every object's reference material, then every
  object's neural one, the same seed and spp, `--rounds` times in turn; ms/spp is the dispatches'
  time (RenderResult.ms_per_spp: no loading, no compile). `--materials` adds compare's per-material
  timings (renderer/compare/stage.material_timings).
- Viewer: renderer/viewer/session.ViewerSession without a window, its render scale picked the way
  `neumat view` picks it by default (`calibrate_scale`), then frames as the window runs them
  (`step()` then `image`), two ways: orbiting (the camera moves every frame, so every frame starts
  a new accumulation: what the window shows while someone drags) and still (accumulating). The
  default view settings apply, so the moving view is denoised where Open Image Denoise is installed
  (the line says whether it was). Window drawing and the panel are not included.

    python tools/bench_frame.py                      # 400x225, 4 spp, 3 rounds: about 1.5 min on 2 cores
                                                     # once compiled (the first run compiles for minutes)
    python tools/bench_frame.py --width 800 --spp 8 --rounds 5 --materials
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from neumat.renderer.neural.codegen import MLP_PATHS  # noqa: E402

SCENE = "stage"


def stage_times(device, scene, width: int, height: int, spp: int, rounds: int, max_depth: int, seed: int,
                materials: bool, log, mlp: str = "auto") -> dict:
    from neumat.renderer.compare.stage import material_timings, switchable_tracer
    from neumat.renderer.materials.query import MATERIAL_KINDS

    t0 = time.perf_counter()
    tracer = switchable_tracer(device, scene, log, mlp)
    out = {"compile_s": time.perf_counter() - t0, "ray_casting": getattr(tracer, "ray_casting", "pipeline"),
           "mlp": tracer.neural_set.mlp}
    times = {kind: [] for kind in MATERIAL_KINDS}
    for r in range(rounds):
        for kind in (MATERIAL_KINDS if r % 2 == 0 else MATERIAL_KINDS[::-1]):
            result = tracer.render(spp, seed + r, max_depth=max_depth, width=width, height=height,
                                   kinds=tracer.kinds_for(kind))
            times[kind].append(result.ms_per_spp)
        log(f"round {r + 1}: reference {times['reference'][-1]:.0f} ms/spp, neural {times['neural'][-1]:.0f} ms/spp")
    out.update({kind: statistics.median(v) for kind, v in times.items()})
    out["ratios"] = [n / ref for n, ref in zip(times["neural"], times["reference"])]
    if materials:
        out["materials"] = material_timings(tracer, max(1, spp // 2), seed, max_depth, width, height)
    return out


def viewer_fps(device, seconds: float, log) -> dict:
    from neumat.renderer.viewer.session import ViewerSession

    session = ViewerSession(device, SCENE)
    scale = session.calibrate_scale()
    session.settings.render_scale = scale
    session.restart()
    out = {"scale": scale, "size": session.size}
    for mode in ("orbiting", "still"):
        session.restart()
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            if mode == "orbiting":
                session.orbit.orbit(2.0, 0.0)
                session.restart()
            if not session.step() and mode == "still":
                break  # at the spp cap
            session.image  # noqa: B018 (the view the window would upload)
            frames += 1
        elapsed = time.perf_counter() - start
        out[mode] = frames / elapsed
        out[f"{mode}_frames"] = frames
        out[f"{mode}_spp"] = session.main_spp
    out["denoised"] = session.settings.denoise and session.denoise_error is None
    out["denoise_error"] = session.denoise_error
    out["samples_per_second"] = session.samples_per_second
    log(f"viewer: scale {scale:g}, {out['orbiting']:.1f} fps orbiting, {out['still']:.1f} fps still")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--width", type=int, default=400, help="stage render width (default 400; the scene's is 800)")
    ap.add_argument("--height", type=int, default=None, help="default: the scene's aspect ratio")
    ap.add_argument("--spp", type=int, default=4, help="spp of each render (default 4)")
    ap.add_argument("--rounds", type=int, default=3, help="reference/neural render pairs (default 3)")
    ap.add_argument("--max-depth", type=int, default=None, help="default: the scene's (8)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--materials", action="store_true", help="also time each material alone (as neumat compare)")
    ap.add_argument("--viewer-seconds", type=float, default=10.0,
                    help="seconds of viewer frames per mode (default 10; 0 skips the viewer)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--mlp", choices=MLP_PATHS, default="auto", help="the neural materials' MLP path (default auto)")
    args = ap.parse_args(argv)

    from neumat.renderer.core.device import create_device
    from neumat.renderer.scene.scene_file import find_scene, load_scene

    log = lambda line: print(line, flush=True)  # noqa: E731
    device = create_device(args.device)
    scene = load_scene(find_scene(SCENE))
    cam = scene.camera
    width = args.width
    height = args.height or max(1, round(width * cam.height / cam.width))
    max_depth = scene.render.max_depth if args.max_depth is None else args.max_depth
    wall = time.perf_counter()
    log(f"{SCENE} at {width}x{height}, {args.spp} spp per render, max depth {max_depth}, {args.rounds} rounds, "
        f"on {device.info.adapter_name}")
    st = stage_times(device, scene, width, height, args.spp, args.rounds, max_depth, args.seed, args.materials, log,
                     args.mlp)
    view = viewer_fps(device, args.viewer_seconds, log) if args.viewer_seconds > 0 else None

    pixels = width * height
    print(f"\n{SCENE}, {width}x{height}, {args.spp} spp x {args.rounds} rounds, max depth {max_depth} "
          f"(rays: {st['ray_casting']}; neural MLP path {st['mlp']}; compile and first use {st['compile_s']:.0f} s)")
    for kind in ("reference", "neural"):
        ms = st[kind]
        print(f"  {kind:9s} {ms:8.1f} ms/spp  {pixels / ms / 1e3:.3f} M samples/s")
    ratio = st["neural"] / st["reference"]
    print(f"  neural / reference time: {ratio:.3f} (reference / neural {1 / ratio:.2f}x; "
          f"per round {', '.join(f'{r:.3f}' for r in st['ratios'])})")
    if "materials" in st:
        m = st["materials"]
        print(f"  per material (alone, {max(1, args.spp // 2)} spp; baseline {m['baseline_ms_per_spp']:.1f} ms/spp):")
        for name, t in m["materials"].items():
            print(f"    {name:16s} reference {t['reference_ms_per_spp']:8.1f}  neural {t['neural_ms_per_spp']:8.1f} "
                  f"ms/spp  reference/neural {t['speedup']:.2f}x")
    if view:
        w, h = view["size"]
        how = "denoised while moving" if view["denoised"] else f"not denoised ({view['denoise_error'] or 'off'})"
        print(f"viewer (default settings, auto render scale {view['scale']:g} = {w}x{h}, {how}):")
        print(f"  orbiting {view['orbiting']:.1f} fps ({view['orbiting_frames']} frames), "
              f"still {view['still']:.1f} fps ({view['still_frames']} frames, reached {view['still_spp']} spp), "
              f"{view['samples_per_second'] / 1e6:.3f} M samples/s")
    print(f"wall time {time.perf_counter() - wall:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
