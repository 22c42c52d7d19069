#!/usr/bin/env bash
# Here (with PyPI): the CPython 3.12 x86_64 wheels that the lent GPU machine lacks for `bertqa run` (it has
# PyTorch, transformers, tokenizers, numpy, grpcio, pyarrow: ../.library/device/KINDS.md), at the versions the
# GPU image pins (image/requirements-gpu.txt; its hashes are the Python 3.11 files', so only the versions), into the git-ignored .whl/ that benchmarks/gpu_job.sh installs from.
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES="apache-beam pydantic pydantic_core fastavro zstandard cryptography cffi pycparser protobuf proto-plus beartype
objsize jsonpickle httplib2 pyparsing fasteners pytz annotated-types typing-inspection"
pins=()
for name in $NAMES; do
  pins+=("$(grep -i -E "^${name//[-_]/[-_]}==" image/requirements-gpu.txt | cut -d' ' -f1)")
done
rm -rf .whl && mkdir .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d .whl "${pins[@]}"
du -sh .whl
