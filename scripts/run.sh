#!/usr/bin/env bash
# Install vultus into .venv (once), then its main job on real photos: enroll the
# people of a folder (one sub-folder per person) and say who is where in photos.
#   bash scripts/run.sh                      # the sample people and photos under ../shared/data
#   bash scripts/run.sh PEOPLE_DIR PHOTO...  # your own people and photos (images or folders)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install.sh
data=${VULTUS_DATA:-../shared/data}
if [ $# -ge 2 ]; then
  people=$1; shift; photos=("$@")
elif [ $# -eq 1 ]; then
  echo "usage: bash scripts/run.sh [PEOPLE_DIR PHOTO...]" >&2; exit 2
else
  people=$data/face_recognition/examples/knn_examples/train
  photos=("$data/face_recognition/examples/knn_examples/test")
  if [ ! -d "$people" ]; then
    echo "no sample photos at $data (set VULTUS_DATA); name your own: bash scripts/run.sh PEOPLE_DIR PHOTO..." >&2
    exit 2
  fi
fi
# A gallery of its own, so the demo never touches the user's default gallery.
gallery=${VULTUS_GALLERY:-.vultus-demo/gallery.db}
mkdir -p "$(dirname "$gallery")"
.venv/bin/vultus gallery enroll "$people" --gallery "$gallery"
echo
exec .venv/bin/vultus gallery identify "${photos[@]}" --gallery "$gallery"
