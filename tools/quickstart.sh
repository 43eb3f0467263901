#!/usr/bin/env bash
# The README's first command: install what is missing, then run neumat on its built-in default:
# the device report, then the viewer on the stage scene (neural materials from assets/neural/)
# where an X display is available, or the stage path-traced headless with neural materials where
# it is not.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
mkdir -p out
.venv/bin/neumat sysinfo
if [ -n "${DISPLAY:-}" ]; then
  exec .venv/bin/neumat view stage --screenshot-dir out
fi
echo "No display: rendering the stage headless (neumat view needs one; try xvfb-run -a neumat view)."
# The buffer MLP path: one shader for any assets, compiled in about half the time and memory of the
# inlined weights, so the first image comes sooner (docs/performance.md, "The buffer MLP path").
.venv/bin/neumat render stage --mode neural --mlp buffer --spp 16 -o out/stage.png
echo "Open out/stage.png to see the result."
