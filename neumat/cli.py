"""`neumat`: one command, several subcommands, each in its own module (neumat/*_cmd.py) that imports
what it needs only when it runs, so that `neumat --help` is instant and `renderer` never has to know
about `training`. This module holds the options every command shares and the error handling."""

import argparse
import sys

from renderer.errors import NeumatError


def _add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None,
                   help="Vulkan adapter: auto (default), nvidia, gpu, lavapipe, an index or part of a name "
                        "(also $NEUMAT_DEVICE)")


def _add_display_flags(p: argparse.ArgumentParser) -> None:
    from renderer.image_io import TONEMAPPERS
    p.add_argument("--exposure", type=float, default=0.0, help="PNG exposure in stops (default 0)")
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
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except NeumatError as exc:
        print(f"neumat: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neumat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
