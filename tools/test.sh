#!/usr/bin/env bash
# The README's second command (and what CI runs): install what is missing, then run the test suite.
# Extra arguments go to pytest, e.g. `tools/test.sh -m slow` or `tools/test.sh -m ''` for everything.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install.sh
exec .venv/bin/python -m pytest "$@"
