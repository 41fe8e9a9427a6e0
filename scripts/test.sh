#!/usr/bin/env bash
# Install everything the tests need into .venv, lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
.venv/bin/ruff check src tests bench train
# The end-to-end tests need the real images; without them they skip, so say so loudly.
if ! .venv/bin/python -c "import sys; from vultus.data import data_root; sys.exit(data_root() is None)"; then
    echo "WARNING: shared data not found (../shared/data beside the checkout, or set VULTUS_DATA):" \
         "every end-to-end test on real images will be SKIPPED" >&2
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
