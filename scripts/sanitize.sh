#!/usr/bin/env bash
# Builds the extension with AddressSanitizer + UndefinedBehaviorSanitizer into a scratch folder
# and runs the test suite (or the test paths given) against it: `bash scripts/sanitize.sh
# [pytest args]`. Python runs with -S so that an editable install of cnnfast cannot shadow the
# sanitized copy; site-packages is put on PYTHONPATH instead. Leak checking is off (CPython
# itself leaks by design at exit). About 5 minutes to build on 2 cores, 4 to test.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${SANITIZE_DIR:-/tmp/cnnfast-sanitize}"
python="$(command -v python3)"
site="$("$python" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')"
cmake -S "$root" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  -Dpybind11_DIR="$("$python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
rm -rf "$work/pkg" && mkdir -p "$work/pkg"
cp -r "$root/python/cnnfast" "$work/pkg/"
cp "$work"/build/_C*.so "$work/pkg/cnnfast/"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$work"
PYTHONPATH="$work/pkg:$site" "$python" -S -m pytest -q -p no:cacheprovider --rootdir="$work" \
  "${@:-$root/tests}"
