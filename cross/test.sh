#!/usr/bin/env bash
# Tests for the ARM targets under qemu-user: the unit tests (cargo's runner from cross/cargo-config.toml) and the
# smoke test of the release binary against a loopback registry.
#   cross/test.sh REGISTRY [aarch64 armv7]
set -euo pipefail
cd "$(dirname "$0")/.."
reg=${1:?usage: cross/test.sh REGISTRY [ARCH...]}; shift
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
for arch in "${@:-armv7 aarch64}"; do
  case $arch in aarch64) t=aarch64-unknown-linux-gnu;; armv7) t=armv7-unknown-linux-gnueabihf;; *) echo "bad arch $arch" >&2; exit 2;; esac
  echo "== $arch: unit tests under qemu"
  start=$(date +%s)
  mkdir -p target/cross
  # test results on stdout; the compiler's output (static-glibc linker notes included) goes to the log
  if ! /usr/bin/cargo test --locked --target "$t" --config cross/cargo-config.toml --lib --bins -q 2> "target/cross/test-$arch.log"; then
    tail -40 "target/cross/test-$arch.log"
    exit 1
  fi
  echo "== $arch: smoke test"
  cross/smoke.sh "$arch" "$reg"
  echo "== $arch: $(( $(date +%s) - start )) s"
done
