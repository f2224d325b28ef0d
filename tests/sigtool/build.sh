#!/usr/bin/env bash
# Build the signature reference (sigstore's Rust crate; see src/main.rs) into target/sigtool/release/, once:
# cargo keeps it there, so a second run is a no-op. Out of tests/run's way: cross/check runs it.
set -euo pipefail
cd "$(dirname "$0")"
dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null | grep -q "ok installed" || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libssl-dev pkg-config >/dev/null; }
CARGO_TARGET_DIR=../../target/sigtool cargo build --release --locked --quiet
