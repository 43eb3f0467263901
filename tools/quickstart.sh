#!/usr/bin/env bash
# The README's first command: install what is missing, then run neumat on its built-in default.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
mkdir -p out
.venv/bin/neumat sysinfo
.venv/bin/neumat render-test -o out/render-test.png
echo "Open out/render-test.png to see the test image."
