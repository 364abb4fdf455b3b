#!/usr/bin/env bash
# CI step: the C++ core (every op and the scalar tier, the only tier on ARM) compiles for
# aarch64 with warnings as errors, cross-built with Debian's aarch64 GCC so that code which
# only x86 ever compiled cannot rot. A full run of the test suite on aarch64 (an arm64 chroot
# under qemu-user, tens of minutes of emulation) is done by hand, not here. About a minute.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)

if ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq g++-aarch64-linux-gnu >/dev/null
  else
    echo "skipped: no aarch64 cross compiler and no apt-get"
    exit 0
  fi
fi

build=build/ci-aarch64
rm -rf "$build"
cmake -S . -B "$build" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_CXX_COMPILER=aarch64-linux-gnu-g++ \
  -DCNNFAST_BUILD_PYTHON=OFF -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS=-Werror >/dev/null
cmake --build "$build" -j2 >/dev/null
echo "aarch64 cross build of cnnfast_core: ok in $(($(date +%s) - start)) s"
