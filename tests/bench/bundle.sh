#!/usr/bin/env bash
# Bundle import: a bundle holding the 505 MB, 4-layer big:1 image and the bench rootfs template (tests/bench/
# lxclib.sh), written by `depot bundle create`, then taken in by a fresh depot (`depot bundle import`: every blob
# verified, both recorded), beside, in the same run: `docker load` of the same image into dockerd 20.10 (from
# depot's `docker save` archive), `skopeo copy oci-archive:` of the image out of the same bundle into an OCI
# layout, and `dd conv=fsync` of the bundle file (the floor: its bytes written once). Wall time and peak RSS
# (the daemon's VmHWM and RssAnon peak for depot and dockerd, the command's for the others). Not a test: nothing
# is asserted.
#   tests/bench/bundle.sh          uses $DEPOT_TEST_PEERS if set, else starts its own peers
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. tests/bench/lib.sh
. tests/bench/lxclib.sh
bench_bin
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
bench_rootfs
serve_bench_tree
IMG=$PLAIN/big:1
now() { date +%s.%N; }
mb() { echo "scale=1; $1 / 1000" | bc; }
daemon() { # data root
  "$BIN" serve --data-root "$1" --tcp none --log-level warn --lxc-source "bench=lxc:http://127.0.0.1:$PORT" \
    2>>"$W/depot.log" &
  DPID=$!
  for _ in $(seq 1 500); do curl -sf --unix-socket "$1/depot.sock" http://x/_ping >/dev/null 2>&1 && return; sleep 0.01; done
  echo "depot did not start: $(tail -3 "$W/depot.log")" >&2; exit 1
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }

# the source NAS: the image and the template, a bundle of both, and a docker archive of the image
daemon "$W/a"
curl -sf --unix-socket "$W/a/depot.sock" -X POST "http://x/images/create?fromImage=$PLAIN/big&tag=1" >/dev/null
"$BIN" -H "$W/a/depot.sock" lxc pull --source bench bench/1/amd64 >/dev/null
"$BIN" -H "$W/a/depot.sock" bundle create -o "$W/b.tar" --lxc bench/1/amd64/default "$IMG"
"$BIN" -H "$W/a/depot.sock" save -o "$W/img.tar" "$IMG"
stop
BYTES=$(stat -c %s "$W/b.tar")
sync

echo "bundle: $(echo "scale=1; $BYTES / 1000000" | bc) MB (big:1 $(echo "scale=1; ($BYTES - $SIZE) / 1000000" | bc) MB + rootfs $(echo "scale=1; $SIZE / 1000000" | bc) MB)"
echo
echo "| what | wall | MB/s | peak RSS | peak RssAnon |"
echo "|---|---|---|---|---|"
# depot: a fresh NAS takes the whole bundle in
daemon "$W/b"
sample_anon_peak "$DPID" "$W/anon"
t0=$(now); "$BIN" -H "$W/b/depot.sock" bundle import "$W/b.tar" >/dev/null; t1=$(now)
s=$(echo "$t1 - $t0" | bc)
printf "| depot bundle import (image + template) | %.2f s | %.0f | %s MB | %s MB |\n" "$s" "$(echo "$BYTES / 1000000 / $s" | bc -l)" \
  "$(mb "$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")")" "$(mb "$(cat "$W/anon")")"
stop
# the same bundle again: every blob is there, nothing is written
daemon "$W/b"
t0=$(now); "$BIN" -H "$W/b/depot.sock" bundle import "$W/b.tar" >/dev/null; t1=$(now)
printf "| depot bundle import again (all present) | %.2f s | | %s MB | |\n" "$(echo "$t1 - $t0" | bc)" \
  "$(mb "$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")")"
stop
# dockerd: the image alone, from depot's docker save archive
dockerd --host "unix://$W/dockerd.sock" --data-root "$W/dockerd" --exec-root "$W/dockerd-exec" \
  --pidfile "$W/dockerd.pid" --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 > "$W/dockerd.log" 2>&1 &
SPID=$!
until curl -sf --unix-socket "$W/dockerd.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.1; done
ISIZE=$(stat -c %s "$W/img.tar")
sample_anon_peak "$SPID" "$W/anon-d"
t0=$(now); DOCKER_HOST=unix://$W/dockerd.sock docker load -q -i "$W/img.tar" >/dev/null; t1=$(now)
s=$(echo "$t1 - $t0" | bc)
printf "| docker load into dockerd 20.10 (image only, %s MB archive) | %.2f s | %.0f | %s MB | %s MB |\n" \
  "$(echo "$ISIZE / 1000000" | bc)" "$s" "$(echo "$ISIZE / 1000000 / $s" | bc -l)" \
  "$(mb "$(awk '/VmHWM/ {print $2}' "/proc/$SPID/status")")" "$(mb "$(cat "$W/anon-d")")"
kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
# skopeo: the image out of the same bundle into an OCI layout
t0=$(now); /usr/bin/time -f "%M" -o "$W/skopeo.kb" skopeo copy -q "oci-archive:$W/b.tar:$IMG" "oci:$W/skopeo:big" ; t1=$(now)
s=$(echo "$t1 - $t0" | bc)
printf "| skopeo copy oci-archive: to oci: (image only) | %.2f s | | %s MB | |\n" "$s" "$(mb "$(tail -1 "$W/skopeo.kb")")"
# the floor: the bundle's bytes written once and made durable
t0=$(now); /usr/bin/time -f "%M" -o "$W/dd.kb" dd if="$W/b.tar" of="$W/dd.out" bs=1M conv=fsync status=none; t1=$(now)
s=$(echo "$t1 - $t0" | bc)
printf "| dd bs=1M conv=fsync of the bundle | %.2f s | %.0f | %s MB | |\n" "$s" "$(echo "$BYTES / 1000000 / $s" | bc -l)" \
  "$(mb "$(tail -1 "$W/dd.kb")")"
