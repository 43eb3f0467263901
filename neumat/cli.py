"""`neumat`: one command, several subcommands, each in its own module (neumat/*_cmd.py) that imports
what it needs only when it runs, so that `neumat --help` is instant and `renderer` never has to know
about `training`. Building the parser imports no torch, slangpy or GL (tests/test_cli.py checks).
This module holds the options every command shares, the error handling and Ctrl-C's exit."""

import argparse
import sys

from neumat.renderer.core import interrupts
from neumat.renderer.core.errors import NeumatError
from neumat.renderer.core.numbers import number_option

EXPOSURE_RANGE = (-64.0, 64.0)  # stops: beyond any use, and 2^64 x a float32 radiance below 1e19 stays finite


def _add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="Vulkan adapter: auto (default), nvidia, gpu, lavapipe, an index or part of a name "
                        "(also $NEUMAT_DEVICE)")


def _add_display_flags(p: argparse.ArgumentParser) -> None:
    from neumat.renderer.images.io import TONEMAPPERS
    p.add_argument("--exposure", type=number_option(*EXPOSURE_RANGE), default=0.0,
                   help=f"PNG exposure in stops, in [{EXPOSURE_RANGE[0]:g}, {EXPOSURE_RANGE[1]:g}] (default 0)")
    p.add_argument("--tonemapper", choices=sorted(TONEMAPPERS), default="aces",
                   help="PNG tonemapper (default aces: Narkowicz's ACES filmic fit)")


def build_parser() -> argparse.ArgumentParser:
    from neumat.bake_cmd import add_bake_parser
    from neumat.compare_cmd import add_compare_parser
    from neumat.material_cmd import add_material_parser
    from neumat.render_cmd import add_render_parser
    from neumat.view_cmd import add_view_parser
    from neumat.system_cmd import add_system_parsers

    parser = argparse.ArgumentParser(prog="neumat", description="Neural appearance models: bake layered "
                                     "materials into neural materials and render both with a Slang path tracer.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_system_parsers(sub, _add_device_flag, _add_display_flags)
    add_material_parser(sub, _add_device_flag, _add_display_flags)
    add_render_parser(sub, _add_device_flag, _add_display_flags)
    add_view_parser(sub, _add_device_flag, _add_display_flags)
    add_bake_parser(sub, _add_device_flag)
    add_compare_parser(sub, _add_device_flag)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit code (2 on bad input, 130 on Ctrl-C, both with one line)."""
    try:
        args = build_parser().parse_args(argv)
        code = args.func(args)
        if code != 130 and interrupts.received():  # swallowed on the way (torch's C++ import of numpy
            raise KeyboardInterrupt                   # clears errors): still an interrupted command
        return code
    except NeumatError as exc:
        print(f"neumat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(interrupts.MESSAGE, file=sys.stderr)
        return 130
    except Exception:
        if interrupts.received():  # a library turned the interrupt into another error (a half-done import)
            print(interrupts.MESSAGE, file=sys.stderr)
            return 130
        raise


def run() -> None:
    """The console command: main() with Ctrl-C's watchdog (renderer/core/interrupts.py); an interrupted
    command ends at once, without interpreter teardown; a finished one tears down undisturbed."""
    interrupts.install()
    code = main()
    if code == 130:
        interrupts.exit_now(code)
    interrupts.finish()
    sys.exit(code)


if __name__ == "__main__":
    run()
