#!/usr/bin/env bash
# Install everything the tests need into .venv, lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
.venv/bin/ruff check src tests bench train
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
