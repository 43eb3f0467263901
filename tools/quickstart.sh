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
  # The buffer MLP path here too: a first viewer launch on lavapipe compiles in minutes instead of
  # many (it renders the neural materials about 1.7x slower than `--mlp loop`).
  exec .venv/bin/neumat view stage --mlp buffer --screenshot-dir out
fi
echo "No display: rendering the stage headless (neumat view needs one; try xvfb-run -a neumat view)."
# The buffer MLP path (one shader for any assets) in an all-neural scene, which leaves the layered
# reference code out: the first image in about 1.5 minutes on 2 cores with cold caches instead of 4
# (docs/performance.md, "Time to the first image"). Denoised: 16 spp is grainy.
.venv/bin/neumat render stage --mode neural --mlp buffer --spp 16 --denoise -o out/stage.png
echo "Open out/stage.png to see the result."
