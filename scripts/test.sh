#!/usr/bin/env bash
# Install everything the tests need into .venv, lint, and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
# The browser test drives Debian's chromium (playwright cannot download its own browsers offline).
# Install it quietly when it is missing; without it that one test skips, so say so.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Debian's chromium for the browser test (first run only) ..." >&2
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1; then sudo_cmd="sudo -n"; fi
    { $sudo_cmd apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { $sudo_cmd apt-get update -qq >/dev/null 2>&1 && $sudo_cmd apt-get install -y -qq chromium >/dev/null 2>&1; }; } \
      || echo "WARNING: could not install chromium: the browser test will be SKIPPED" >&2
fi
.venv/bin/ruff check src tests bench train
# The end-to-end tests need the real images; without them they skip, so say so loudly.
if ! .venv/bin/python -c "import sys; from vultus.data import data_root; sys.exit(data_root() is None)"; then
    echo "WARNING: shared data not found (../shared/data beside the checkout, or set VULTUS_DATA):" \
         "every end-to-end test on real images will be SKIPPED" >&2
fi
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
