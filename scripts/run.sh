#!/usr/bin/env bash
# Install vultus into .venv (once) and run its main job on real photos:
#   bash scripts/run.sh              # the sample photos under ../shared/data
#   bash scripts/run.sh PATH         # your own folder (one sub-folder per person) or image
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
exec .venv/bin/vultus demo "$@"
