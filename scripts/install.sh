#!/usr/bin/env bash
# Create .venv and install vultus with its extras; quiet when already installed.
# Sourced by run.sh and test.sh.
set -euo pipefail
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.vultus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "Installing vultus and its models into .venv (first run only) ..." >&2
  # pip's notes about this machine's unused local index folders are noise here.
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
  # ray: `vultus bulk` and its tests; privacy: torch for `vultus cloak` and its tests
  # (`pip install torch==2.13.0` takes the CPU wheel on these machines); postgres: psycopg + pgvector
  .venv/bin/python -m pip install -q -e ".[dev,service,report,ray,privacy,postgres]" 2>&1 | { grep -v "^WARNING: Location" || true; } >&2
  .venv/bin/python -c "import vultus, onnxruntime, dlib, cv2" || { echo "install failed" >&2; exit 1; }
  touch "$stamp"
fi
