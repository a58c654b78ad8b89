#!/usr/bin/env bash
# Unpack a bundle made by deploy/offline/pack.sh on the machine without internet: the wheels
# and Ray into BUNDLE/site, the datasets into BUNDLE/datasets. Done once; a second call only
# prints the settings. Source it (or eval its output) for the two variables it prints:
#
#   eval "$(deploy/offline/install.sh BUNDLE)"   # sets PYTHONPATH and DEEPNETS_DATA_ROOT
set -euo pipefail

bundle=$(cd "${1:?usage: install.sh BUNDLE}" && pwd)
site=$bundle/site
data=$bundle/datasets
if [ ! -e "$site/.installed" ]; then
    mkdir -p "$site" "$data"
    python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
        --target "$site" "$bundle"/wheels/*.whl >&2
    tar xJf "$bundle/ray.tar.xz" -C "$site"
    for archive in "$bundle"/mnist.tar.xz "$bundle"/cifar10-jpeg.tar.xz; do
        if [ -e "$archive" ]; then tar xJf "$archive" -C "$data"; fi
    done
    touch "$site/.installed"
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
echo "export PYTHONPATH=$site:$repo\${PYTHONPATH:+:\$PYTHONPATH}"
echo "export DEEPNETS_DATA_ROOT=$data"
