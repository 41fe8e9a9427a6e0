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
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,service,report]"
  touch "$stamp"
fi
