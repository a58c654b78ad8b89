#!/usr/bin/env bash
# Pack what deepnets needs on a GPU machine without internet whose Python already has torch
# (the GPU runs in BENCHMARKS.md ran on such machines): Ray unpacked from its wheel (less
# rllib, serve, llm and the Java jars, binaries stripped: 80 MB of wheel become ~20 MB), the
# other packages that machine lacks as wheels, and MNIST and CIFAR-10: ~50 MB in all (the
# device tool carries at most 64 MiB a call; CIFAR-10's 60,000 small JPEGs share their headers,
# so xz packs 55 MB of them into ~19 MB).
#
#   deploy/offline/pack.sh OUT [HAVE]
#
# Run it where PyPI answers. HAVE lists the packages the target already has, one name per line
# (`python3 -m pip list --format=freeze` there; default: deploy/offline/device-image.txt, the
# GPU image this project was lent). On the target: deploy/offline/install.sh OUT [DEST].
# Environment: PYTHON_VERSION (3.12), RAY_VERSION (2.60.0), DATA_ROOT (../shared/datasets).
set -euo pipefail

out=$(mkdir -p "${1:?usage: pack.sh OUT [HAVE]}/wheels" && cd "$1" && pwd)  # absolute: we cd
here=$(cd "$(dirname "$0")" && pwd)
have=${2:-$here/device-image.txt}
py=${PYTHON_VERSION:-3.12}
ray_version=${RAY_VERSION:-2.60.0}
data_root=${DATA_ROOT:-$here/../../../shared/datasets}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

download() {  # wheels for the target's Python and platform, with their dependencies
    python3 -m pip download --quiet --only-binary=:all: --python-version "$py" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform any -d "$work/wheels" "$@"
}

requirements() {  # the names of deepnets' requirements in pyproject.toml, Ray left out
    python3 - "$here/../../pyproject.toml" <<'PY'
import re, sys, tomllib

for requirement in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group()
    if name != "ray":
        print(name)
PY
}

normalized() {  # a distribution name as pip compares them: lower case, runs of -_. as one -
    tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/-/g'
}

cut -d= -f1 "$have" | normalized | sort -u > "$work/have"
# deepnets' own requirements that the target lacks (torch, timm and the like stay out: they
# would pull in CUDA's wheels), resolved with their dependencies; Ray always comes.
wanted=("ray[train,tune]==$ray_version")
for requirement in $(requirements); do
    grep -qx "$(echo "$requirement" | normalized)" "$work/have" || wanted+=("$requirement")
done
echo "resolving ${wanted[*]} for Python $py"
download "${wanted[@]}"
for wheel in "$work"/wheels/*.whl; do
    name=$(basename "$wheel" | cut -d- -f1 | normalized)
    if [ "$name" = ray ]; then
        (cd "$work" && unzip -q "$wheel" -d ray-unpacked)
    elif ! grep -qx "$name" "$work/have"; then
        cp "$wheel" "$out/wheels/"
    fi
done

echo "slimming Ray"
cd "$work/ray-unpacked"
rm -rf ray/rllib ray/serve ray/llm ray/jars
strip --strip-unneeded ray/_raylet.so ray/core/src/ray/gcs/gcs_server ray/core/src/ray/raylet/raylet
tar cf - ray ray-*.dist-info | xz -T0 -9 > "$out/ray.tar.xz"

echo "packing the datasets from $data_root"
tar cf - -C "$data_root" MNIST/raw | xz -T0 -9 > "$out/mnist.tar.xz"
tar cf - -C "$data_root" cifar10-jpeg | xz -T0 -6 > "$out/cifar10-jpeg.tar.xz"

du -sh "$out"/* && du -sh "$out"
echo "wheels: $(ls "$out/wheels" | tr '\n' ' ')"
