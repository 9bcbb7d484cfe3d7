#!/usr/bin/env bash
# Set up the real ComfyUI host beside the pack, for the host tests (make host-setup):
#   .host/ComfyUI   ComfyUI's source from ../shared/comfyui (unpacked once)
#   .host/venv      ComfyUI's Python: torch 2.14.1 + torchvision 0.29.1, ComfyUI's requirements,
#                   the pack's requirements and the test tools
# Prints where it is; exits 0 without doing anything when ../shared/comfyui is absent.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=${COMFYUI_SOURCE:-../shared/comfyui}
HOST=.host
archive=$(ls "$SRC"/ComfyUI-[0-9a-f]*.tar.gz 2>/dev/null | head -1 || true)
if [ -z "$archive" ]; then
  echo "setup_host: no ComfyUI archive in $SRC; host tests will be skipped"
  exit 0
fi
mkdir -p "$HOST"
if [ ! -f "$HOST/ComfyUI/main.py" ]; then
  rm -rf "$HOST/ComfyUI" "$HOST/unpack"
  mkdir -p "$HOST/unpack"
  tar xzf "$archive" -C "$HOST/unpack"
  mv "$HOST/unpack"/ComfyUI-* "$HOST/ComfyUI"
  rm -rf "$HOST/unpack"
fi
if [ ! -x "$HOST/venv/bin/python" ] || [ ! -f "$HOST/venv/.ready" ]; then
  python3 -m venv "$HOST/venv"
  "$HOST/venv/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
  "$HOST/venv/bin/pip" install -q -r "$HOST/ComfyUI/requirements.txt" requests
  "$HOST/venv/bin/pip" install -q -r requirements-dev.txt
  touch "$HOST/venv/.ready"
fi
echo "setup_host: ComfyUI at $HOST/ComfyUI, Python $HOST/venv/bin/python"
