#!/usr/bin/env bash
# Unpack a bundle made by deploy/offline/pack.sh on the machine without internet: the wheels
# and Ray into DEST/site, the datasets into DEST/datasets (DEST: the bundle itself unless
# given). Done once per bundle: a later call with the same bundle only prints the settings, a
# rebuilt bundle is unpacked again. Eval its output for the two variables it prints:
#
#   settings=$(deploy/offline/install.sh BUNDLE [DEST]) && eval "$settings"
#   # PYTHONPATH (the unpacked packages, then this repository) and DEEPNETS_DATA_ROOT
set -euo pipefail
shopt -s nullglob

bundle=$(cd "${1:?usage: install.sh BUNDLE [DEST]}" && pwd)
dest=$(mkdir -p "${2:-$bundle}" && cd "${2:-$bundle}" && pwd)
site=$dest/site
data=$dest/datasets
fingerprint=$(cd "$bundle" && ls -l --time-style=+%s ./*.tar.xz wheels | md5sum | cut -c1-32)
if [ "$(cat "$site/.bundle" 2>/dev/null)" != "$fingerprint" ]; then
    rm -rf "$site" "$data"
    mkdir -p "$site" "$data"
    wheels=("$bundle"/wheels/*.whl)
    if [ ${#wheels[@]} -gt 0 ]; then
        python3 -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir \
            --target "$site" "${wheels[@]}" >&2
    fi
    tar xJf "$bundle/ray.tar.xz" -C "$site"
    for archive in "$bundle"/mnist.tar.xz "$bundle"/cifar10-jpeg.tar.xz; do
        if [ -e "$archive" ]; then tar xJf "$archive" -C "$data"; fi
    done
    echo "$fingerprint" > "$site/.bundle"
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
echo "export PYTHONPATH=$site:$repo\${PYTHONPATH:+:\$PYTHONPATH}"
echo "export DEEPNETS_DATA_ROOT=$data"
