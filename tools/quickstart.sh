#!/usr/bin/env bash
# The README's first command: install what is missing, then run neumat on its built-in default:
# the device report, the test image, and the built-in stage scene path-traced headless (the
# interactive viewer will take this place where a display is available).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
mkdir -p out
.venv/bin/neumat sysinfo
.venv/bin/neumat render-test -o out/render-test.png
.venv/bin/neumat render stage --spp 16 -o out/stage.png
echo "Open out/render-test.png and out/stage.png to see the results."
