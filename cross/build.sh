#!/usr/bin/env bash
# Release binaries of depot for the NAS CPUs, fully static and stripped, with checks and a size table.
#   cross/build.sh                    all three: x86_64 (QDK x86_64), aarch64 (arm_64), armv7 (arm-x41)
#   cross/build.sh aarch64 armv7      some of them
# Output: target/<triple>/dist/depot (the `dist` profile: LTO, one codegen unit; built in target/cross/all), and target/cross/sizes.md. Installs the toolchain if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
cross/setup.sh
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2}
CARGO=/usr/bin/cargo

triple() { case $1 in x86_64) echo x86_64-unknown-linux-gnu;; aarch64) echo aarch64-unknown-linux-gnu;;
  armv7) echo armv7-unknown-linux-gnueabihf;; *) echo "unknown arch $1 (x86_64|aarch64|armv7)" >&2; exit 2;; esac; }
qdk() { case $1 in x86_64) echo x86_64;; aarch64) echo arm_64;; armv7) echo arm-x41;; esac; }
runner() { case $1 in x86_64) echo "";; aarch64) echo "qemu-aarch64 -cpu cortex-a53";; armv7) echo "qemu-arm -cpu cortex-a9";; esac; }

mkdir -p target/cross
table=target/cross/sizes.md
{
  echo "| arch (QDK) | target | stripped size | linking | max GLIBC_ needed | LOAD align | runs |"
  echo "|---|---|---|---|---|---|---|"
} > "$table"
fail=0
arches=$(echo "${@:-x86_64 aarch64 armv7}")
# One cargo builds every target: the host's build scripts and proc macros are built once for all three, and each
# target's single-threaded LTO link overlaps with the others' compiling. Only the daemon: depot-qpkg is a build
# tool that runs on the build machine.
log=target/cross/build.log
targets=()
for arch in $arches; do targets+=(--target "$(triple "$arch")"); done
ok=1
CARGO_TARGET_DIR=target/cross/all "$CARGO" build --profile dist --locked --bin depot "${targets[@]}" \
  --config cross/cargo-config.toml > "$log" 2>&1 || { tail -30 "$log"; ok=0; fail=1; }
# static glibc must never reach NSS (getaddrinfo, getpwnam…): depot resolves and looks up users itself
if grep -q "in statically linked applications" "$log"; then
  echo "cross/build: a binary links glibc's NSS (getaddrinfo, getpwnam…), which would load the NAS's own libnss:" >&2
  grep "in statically linked applications" "$log" | grep -o "[a-z0-9_]*-unknown-linux-gnu[a-z]*\|Using '[a-z_]*'" | sort -u >&2
  fail=1
fi
for arch in $arches; do
    t=$(triple "$arch")
    [ "$ok" = 1 ] || continue
    mkdir -p "target/$t/dist"
    cp -f "target/cross/all/$t/dist/depot" "target/$t/dist/depot"
    b=target/$t/dist/depot
    [ -x "$b" ] || { echo "cross/build: $arch failed, see $log" >&2; fail=1; continue; }
    size=$(stat -c %s "$b")
    kind=$(file -b "$b")
    linking=dynamic; echo "$kind" | grep -Eq 'statically linked|static-pie linked' && linking=static
    glibc=$(readelf -W --version-info "$b" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)
    align=$(readelf -lW "$b" | awk '$1=="LOAD"{print $NF}' | sort -u | paste -sd, -)
    run=$($(runner "$arch") "$b" --version 2>&1 || true)
    echo "| $arch ($(qdk "$arch")) | $t | $size B ($(awk "BEGIN{printf \"%.2f\", $size/1048576}") MiB) | $linking | ${glibc:-none} | $align | \`$run\` |" >> "$table"
    [ "$linking" = static ] || { echo "cross/build: $arch binary is not static" >&2; fail=1; }
    if [ "$arch" != x86_64 ] && [ "$align" != 0x10000 ]; then echo "cross/build: $arch LOAD segments not 64 KiB aligned" >&2; fail=1; fi
    case "$run" in "depot "*) ;; *) echo "cross/build: $arch binary does not run: $run" >&2; fail=1;; esac
    if grep -a -q -e nsswitch.conf -e libnss_ "$b"; then
      echo "cross/build: $arch links glibc's NSS (it names nsswitch.conf or libnss_)" >&2
      fail=1
    fi
done
cat "$table"
exit $fail
