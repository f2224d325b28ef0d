#!/usr/bin/env bash
# Build depot's QPKGs, one per NAS CPU family, into target/qpkg/:
#   depot_<version>_x86_64.qpkg, depot_<version>_arm_64.qpkg, depot_<version>_arm-x41.qpkg (+ .md5 each)
# from the static dist binaries of cross/build.sh and depot's own assembler (qpkg/assemble.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
cross/build.sh
cargo build --release --quiet --bin depot-qpkg
for pair in x86_64:x86_64-unknown-linux-gnu arm_64:aarch64-unknown-linux-gnu arm-x41:armv7-unknown-linux-gnueabihf; do
  arch=${pair%%:*} triple=${pair#*:}
  pkg=$(target/release/depot-qpkg --arch "$arch" --binary "target/$triple/dist/depot" --out target/qpkg)
  (cd target/qpkg && md5sum "$(basename "$pkg")" > "$(basename "$pkg").md5")
done
echo
echo "| package | size |"
echo "|---|---|"
for f in target/qpkg/*.qpkg; do printf "| %s | %s B |\n" "$(basename "$f")" "$(stat -c %s "$f")"; done
