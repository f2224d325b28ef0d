#!/usr/bin/env bash
# Install what cross-building depot needs, once per machine (idempotent; run as root):
# Debian's rustc-web toolchain, the aarch64 and armhf cross gcc, qemu-user, and a std for each ARM target that
# matches rustc-web exactly (spec: shared/spec/cross-build.md §3). Prints nothing but progress; exits non-zero if
# a target's std is still unusable at the end.
set -euo pipefail
TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"
PKGS="rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu libc6-dev-arm64-cross
      gcc-arm-linux-gnueabihf binutils-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user file"

missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "cross/setup: installing $(echo $missing)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
V=$(dpkg-query -W -f='${Version}' rustc-web)
RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
export RUSTC RUSTDOC=/usr/bin/rustdoc

std_ok() { # triple
  local t; t=$(mktemp -d)
  echo 'fn main(){}' > "$t/s.rs"
  "$RUSTC" --target "$1" --crate-type bin --emit=metadata --out-dir "$t" "$t/s.rs" >/dev/null 2>&1
  local rc=$?; rm -rf "$t"; return $rc
}

fetch_std_deb() { # debian-arch triple
  local s; s=$(mktemp -d); mkdir -p "$s/lists/partial"
  local a="-o Dir::State::Lists=$s/lists -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= -o APT::Architectures::=$1"
  if apt-get $a update -qq >/dev/null 2>&1 && (cd "$s" && apt-get $a download -qq "libstd-rust-web-dev:$1=$V" >/dev/null 2>&1); then
    rm -rf "/usr/lib/rustlib/$2"
    dpkg-deb --fsys-tarfile "$s"/libstd-rust-web-dev_*_"$1".deb | tar -x -C / "./usr/lib/rustlib/$2"
    rm -rf "$s"; return 0
  fi
  rm -rf "$s"; return 1
}

build_std_from_source() { # triple: Debian's own rust-web-src, the exact same version (one-off, ~50 s)
  local w; w=$(mktemp -d); mkdir -p "$w/sb/src"; echo '#![no_std]' > "$w/sb/src/lib.rs"
  cat > "$w/rustc-wrap" <<'EOW'
#!/bin/sh
r="$1"; shift
case " $* " in *" --crate-name panic_abort "*) exec "$r" "$@" -C panic=abort ;; esac
exec "$r" "$@"
EOW
  chmod +x "$w/rustc-wrap"
  printf '[package]\nname = "sysroot-builder"\nversion = "0.0.0"\nedition = "2024"\n\n[profile.release]\nopt-level = 3\ndebug = false\nlto = false\ncodegen-units = 1\npanic = "unwind"\n' > "$w/sb/Cargo.toml"
  (cd "$w/sb" && RUSTC_WRAPPER="$w/rustc-wrap" RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Cembed-bitcode=yes \
    "$CARGO" build -q --release --target "$1" -Zbuild-std=std,panic_abort,panic_unwind,test,proc_macro)
  local l=/usr/lib/rustlib/$1/lib
  rm -rf "$l"; mkdir -p "$l"
  cp "$w"/sb/target/"$1"/release/deps/lib*.rlib "$w"/sb/target/"$1"/release/deps/lib*.rmeta "$l"/
  rm -f "$l"/libsysroot_builder-*
  rm -rf "$w"
}

std_ok aarch64-unknown-linux-gnu || {
  echo "cross/setup: aarch64 std from Debian's arm64 package $V"
  fetch_std_deb arm64 aarch64-unknown-linux-gnu || build_std_from_source aarch64-unknown-linux-gnu
}
std_ok armv7-unknown-linux-gnueabihf || {
  echo "cross/setup: armv7 std ($V)"
  fetch_std_deb armhf armv7-unknown-linux-gnueabihf || { echo "cross/setup: armhf package unavailable, building std from rust-web-src"; build_std_from_source armv7-unknown-linux-gnueabihf; }
}
bad=0
for t in $TARGETS; do std_ok "$t" || { echo "cross/setup: std for $t is missing or stale" >&2; bad=1; }; done
exit $bad
