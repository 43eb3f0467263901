#!/usr/bin/env bash
# Installs whatever neumat still needs on Debian 12, and nothing that is already there:
#   1. system packages: Python venv support, g++, Xvfb and Mesa GL (viewer tests), and Mesa >= 25
#      lavapipe (software Vulkan) from bookworm-backports, since Debian 12's own Mesa 22.3 cannot run
#      slangpy's Vulkan device;
#   2. a virtual environment in .venv with torch 2.13.0, slangpy 0.43.1 and the rest of
#      pyproject.toml (the test extras, and the cluster extra, Ray, for tests/test_batch_bake.py).
#      Re-running is quick: each step checks first (pip runs again only when pyproject.toml changed).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[install]\033[0m %s\n' "$*"; }
if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

if ! grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null; then
  say "warning: this script is written for Debian 12 (bookworm); continuing anyway"
fi

# --- system packages -------------------------------------------------------------------------
# libxrandr2 .. libxinerama1: the X11 extension libraries GLFW (the viewer's window) opens at start.
SYSTEM_PACKAGES=(python3 python3-venv python3-dev g++ libvulkan1 xvfb xauth libgl1 libegl1 libgl1-mesa-dri
                 libxrandr2 libxi6 libxcursor1 libxinerama1)
missing=()
for pkg in "${SYSTEM_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
mesa_version=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)
mesa_ok=0
if [ -n "$mesa_version" ] && dpkg --compare-versions "$mesa_version" ge 25; then mesa_ok=1; fi

if [ ${#missing[@]} -gt 0 ] || [ $mesa_ok -eq 0 ]; then
  if [ $mesa_ok -eq 0 ] && ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    # Reuse the mirror this machine already uses for bookworm.
    mirror=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/*.sources | grep -v security | head -n1 | awk '{print $2}')
    [ -n "$mirror" ] || mirror=$(grep -hs '^deb ' /etc/apt/sources.list | grep -v security | head -n1 | awk '{print $2}')
    [ -n "$mirror" ] || { echo "install: cannot find the Debian mirror in apt's sources to add bookworm-backports" >&2; exit 1; }
    say "adding bookworm-backports ($mirror) for Mesa >= 25"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | $SUDO tee /etc/apt/sources.list.d/neumat-bookworm-backports.sources >/dev/null
  fi
  say "apt-get update"
  $SUDO apt-get update -qq
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if [ $mesa_ok -eq 0 ]; then
    say "installing Mesa lavapipe from bookworm-backports (was: ${mesa_version:-none})"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports \
      mesa-vulkan-drivers libgl1-mesa-dri libegl-mesa0 libglx-mesa0 >/dev/null
  fi
fi

# --- Python environment ----------------------------------------------------------------------
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  $PYTHON -m venv .venv
fi
stamp=.venv/.neumat-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv (torch 2.13.0, slangpy 0.43.1, test tools, Ray)"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
  # torch first and pinned: where a CPU build of 2.13.0 is at hand pip takes it; otherwise PyPI's
  # Linux wheel (CUDA included, several GB) comes, which also runs on the CPU.
  .venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -m pip install -q -e '.[test,cluster]' 2>&1 | grep -v '^WARNING: Location' || true
  .venv/bin/python -c "import torch, slangpy, neumat, ray, MaterialX" || { echo "install: the Python packages did not install" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
say "ready: $(.venv/bin/python -c 'import slangpy, torch; print(f"slangpy {slangpy.__version__}, torch {torch.__version__}")')"
