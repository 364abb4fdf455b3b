#!/usr/bin/env bash
# CI step for the documentation (issue 11, part 7): installs Sphinx, runs every docstring
# example of the installed cnnfast as a doctest (uncapped and on the scalar tier, so the shown
# outputs hold on every tier), runs the examples of the docs/ pages (tutorial, installation,
# dispatch) the same way and all of them again through Sphinx's doctest builder, then builds
# the site with warnings as errors into build/docs. Needs cnnfast (and the test extra)
# installed in the active environment. About 1-1.5 minutes on 2 loaded cores (Sphinx install
# ~20 s, pytest doctests ~30 s, Sphinx doctest ~15 s, the HTML build ~10 s).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

python -m pip install -q "sphinx>=7,<10"

# The installed package (a wheel's copy in CI, python/cnnfast in an editable install); the
# benchmark modules and the command line are not examples (they need torch or time things).
pkg=$(cd / && python -c 'import cnnfast, os; print(os.path.dirname(cnnfast.__file__))')
flags=(-q -p no:cacheprovider -o "doctest_optionflags=NORMALIZE_WHITESPACE ELLIPSIS NUMBER")
ignore=(--ignore-glob="$pkg/bench*.py" --ignore="$pkg/__main__.py")

echo "-- docstring examples (default tier)"
python -m pytest "${flags[@]}" --doctest-modules "${ignore[@]}" "$pkg"
echo "-- docstring examples (CNNFAST_MAX_ISA=scalar)"
CNNFAST_MAX_ISA=scalar python -m pytest "${flags[@]}" --doctest-modules "${ignore[@]}" "$pkg"
echo "-- examples of the docs pages"
python -m pytest "${flags[@]}" --doctest-glob='*.rst' docs
echo "-- the same examples through Sphinx's doctest builder (make -C docs doctest)"
python -m sphinx -E -W --keep-going -q -b doctest docs build/docs/doctest
echo "-- HTML build, warnings as errors"
python -m sphinx -E -W --keep-going -q -b html docs build/docs

echo "== docs step done in $(($(date +%s) - start)) s"
