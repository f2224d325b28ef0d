#!/usr/bin/env bash
# Smoke test of a release binary (under qemu-user for ARM): start the daemon, pull a small image from a loopback
# registry, list it, delete it, stop. usage: cross/smoke.sh x86_64|aarch64|armv7 REGISTRY (host:port, plain HTTP)
set -euo pipefail
cd "$(dirname "$0")/.."
arch=$1 reg=$2
case $arch in
  x86_64) t=x86_64-unknown-linux-gnu; run=() ;;
  aarch64) t=aarch64-unknown-linux-gnu; run=(qemu-aarch64 -cpu cortex-a53) ;;
  armv7) t=armv7-unknown-linux-gnueabihf; run=(qemu-arm -cpu cortex-a9) ;;
  *) echo "usage: $0 x86_64|aarch64|armv7 REGISTRY" >&2; exit 2 ;;
esac
b=target/$t/dist/depot
[ -x "$b" ] || { echo "smoke: $b missing (cross/build.sh $arch)" >&2; exit 1; }
w=$(mktemp -d /tmp/depot-smoke.XXXXXX)
"${run[@]}" "$b" serve --data-root "$w/root" --tcp none --platform linux/amd64 --log-level warn 2> "$w/log" &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$w"' EXIT
api() { curl -sS --unix-socket "$w/root/depot.sock" "$@"; }
for _ in $(seq 1 200); do api http://d/_ping >/dev/null 2>&1 && break; sleep 0.05; done
[ "$(api http://d/_ping)" = OK ] || { echo "smoke $arch: daemon did not answer"; cat "$w/log"; exit 1; }
api -X POST "http://d/images/create?fromImage=$reg/test&tag=1" > "$w/pull"
grep -q "Status: Downloaded newer image for $reg/test:1" "$w/pull" || { echo "smoke $arch: pull failed"; cat "$w/pull" "$w/log"; exit 1; }
api http://d/images/json | grep -q "\"$reg/test:1\"" || { echo "smoke $arch: image not listed"; exit 1; }
api -X DELETE "http://d/images/$reg/test:1" | grep -q '"Deleted"' || { echo "smoke $arch: delete failed"; exit 1; }
[ "$(api http://d/images/json)" = "[]" ] || { echo "smoke $arch: image still listed"; exit 1; }
[ -z "$(ls "$w/root/blobs/sha256")" ] || { echo "smoke $arch: blobs left after delete"; exit 1; }
echo "smoke $arch: ok (start, pull, list, delete$( [ ${#run[@]} -gt 0 ] && echo ", under ${run[0]}"))"
