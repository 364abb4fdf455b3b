#!/usr/bin/env bash
# Builds the extension with AddressSanitizer + UndefinedBehaviorSanitizer (the CMake option
# CNNFAST_SANITIZE=ON, at -O1 -g1 with assertions on: the kernels' preconditions are asserts) into
# a scratch folder and runs pytest against it:
# `bash scripts/sanitize.sh [pytest args]` (default: the whole suite, about 4 minutes after a
# 5-minute build on 2 cores). scripts/ci_sanitize.sh runs the bounded CI subset through it.
# Python runs with -S so that an editable install of cnnfast cannot shadow the sanitized copy;
# site-packages is put on PYTHONPATH instead. The sanitizer runtimes are preloaded because the
# interpreter itself is not instrumented. Leak checking is off (CPython keeps its objects at
# exit by design); tests/test_memory.py checks growth instead. Any report stops the run with a
# non-zero status (halt_on_error, -fno-sanitize-recover).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${SANITIZE_DIR:-/tmp/cnnfast-sanitize}"
python="${PYTHON:-$(command -v python3)}"
site="$("$python" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')"
generator=()
if command -v ninja >/dev/null 2>&1; then generator=(-G Ninja); fi
cmake -S "$root" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCNNFAST_SANITIZE=ON \
  -Dpybind11_DIR="$("$python" -c 'import pybind11; print(pybind11.get_cmake_dir())')" \
  -DPython_EXECUTABLE="$python" >/dev/null
cmake --build "$work/build" -j2 >/dev/null
rm -rf "$work/pkg" && mkdir -p "$work/pkg"
cp -r "$root/python/cnnfast" "$work/pkg/"
find "$work/pkg" -name '_C*.so' -delete
cp "$work"/build/_C*.so "$work/pkg/cnnfast/"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
# allocator_may_return_null: an impossible allocation fails as it does without ASan (std::bad_alloc,
# MemoryError in Python) instead of ending the run; tests/test_memory.py checks that path.
# max_allocation_size_mb: an impossible request fails fast as MemoryError (the argument fuzzer
# asks for terabytes; it skips itself without these two options).
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=1024
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
cd "$work"
# The copy under test must be the sanitized one: fail loudly if anything else was imported.
PYTHONPATH="$work/pkg:$site" "$python" -S -c "
import cnnfast, cnnfast._C as c
assert cnnfast.__file__.startswith('$work/pkg/'), cnnfast.__file__
assert '-fsanitize=address,undefined' in c.build_info()['cxx_flags'], c.build_info()
"
PYTHONPATH="$work/pkg:$site" "$python" -S -m pytest -q -p no:cacheprovider --rootdir="$work" \
  "${@:-$root/tests}"
