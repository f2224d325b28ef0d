#!/usr/bin/env bash
# LXC benchmark: a rootfs.tar.xz of at least 200 MB (compressed), made once per machine from a debootstrap
# minbase Debian tree plus real binaries and data from this machine's /usr (cached in /var/cache/depot-tests),
#   - downloaded over loopback from nginx by depot (`depot lxc pull`: fetch, sha256 against SHA256SUMS, store)
#     and by curl (to /dev/null, the floor; and to a file, then sha256sum and sync -f: the same work as depot's);
#   - unpacked by depot (`depot lxc unpack`: decode on its own thread, safe writes, the config, and a syncfs
#     before the rename) and by GNU tar (`tar --numeric-owner --xattrs -xpJf`), alone and followed by `sync -f`.
# Wall time (median of RUNS) and peak RSS: the daemon's VmHWM for depot (a fresh daemon per phase), the largest
# process of the command for the others. Not a test: nothing is asserted.
#   tests/bench/lxc.sh
#   RUNS=5 tests/bench/lxc.sh
#   ONLY=pull tests/bench/lxc.sh      the download alone (the unpacks take minutes)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null; }
# DEPOT_BIN: an already built dist binary (cross/build.sh's static one), else built here
if [ -n "${DEPOT_BIN:-}" ]; then BIN=$DEPOT_BIN; else cargo build --profile dist --quiet; BIN=$ROOT/target/dist/depot; fi
W=$(mktemp -d /tmp/depot-bench-lxc.XXXXXX)
chmod 755 "$W"   # nginx's worker runs as another user
cleanup() {
  [ -n "${DPID:-}" ] && { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; } || true
  [ -n "${NPID:-}" ] && { kill "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null; } || true
  rm -rf "$W"
}
trap cleanup EXIT

. tests/bench/lxclib.sh
bench_rootfs
serve_bench_tree
URL=http://127.0.0.1:$PORT/images/bench/1/amd64/default/$B/rootfs.tar.xz

hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
daemon() { # start a fresh daemon on the data root $W/depot
  "$BIN" serve --data-root "$W/depot" --tcp none --log-level warn --lxc-source "bench=lxc:http://127.0.0.1:$PORT" \
    2>>"$W/depot.log" &
  DPID=$!
  for _ in $(seq 1 500); do curl -sf --unix-socket "$W/depot/depot.sock" http://x/_ping >/dev/null 2>&1 && return; sleep 0.01; done
  echo "depot did not start: $(tail -3 "$W/depot.log")" >&2; exit 1
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }
export DEPOT_SOCKET=$W/depot/depot.sock

for i in $(seq 1 "$RUNS"); do
  rm -rf "$W/depot" "$W/c" "$W/t"
  # download
  daemon
  t0=$(now); "$BIN" lxc pull --source bench bench/1/amd64 > /dev/null; t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/pull.s"; hwm_kb "$DPID" >> "$W/pull.kb"
  stop
  /usr/bin/time -f "%e %M" -o "$W/curl.one" curl -s -o /dev/null "$URL"
  awk '{print $1}' "$W/curl.one" >> "$W/curl.s"; awk '{print $2}' "$W/curl.one" >> "$W/curl.kb"
  # the same work as depot's: kept on disk, checked, durable
  rm -f "$W/rootfs.dl"
  t0=$(now); curl -s -o "$W/rootfs.dl" "$URL"; sha256sum "$W/rootfs.dl" > /dev/null; sync -f "$W/rootfs.dl"; t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/curlsum.s"; rm -f "$W/rootfs.dl"
  [ "${ONLY:-}" = pull ] && continue
  # unpack
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  daemon
  t0=$(now); "$BIN" lxc unpack bench/1/amd64 "$W/c" > /dev/null; t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/unpack.s"; hwm_kb "$DPID" >> "$W/unpack.kb"
  stop
  rm -rf "$W/c"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  mkdir -p "$W/t"
  /usr/bin/time -f "%e %M" -o "$W/tar.one" tar --numeric-owner --xattrs --xattrs-include='*' -xpJf "$ROOTFS" -C "$W/t"
  awk '{print $1}' "$W/tar.one" >> "$W/tar.s"; awk '{print $2}' "$W/tar.one" >> "$W/tar.kb"
  rm -rf "$W/t"; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  mkdir -p "$W/t"
  t0=$(now); tar --numeric-owner --xattrs --xattrs-include='*' -xpJf "$ROOTFS" -C "$W/t"; sync -f "$W/t"; t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/tarsync.s"
  rm -rf "$W/t"
done

m() { median < "$W/$1"; }
mb() { median < "$W/$1" | awk '{printf "%.1f MB", $1/1024}'; }
FILES=$(xz -dc -T2 "$ROOTFS" | tar -t | wc -l)   # once: the table's header
echo
echo "rootfs.tar.xz: $(awk -v s="$SIZE" 'BEGIN{printf "%.1f MB", s/1e6}') compressed, $(awk -v s="$TARSIZE" 'BEGIN{printf "%.1f MB", s/1e6}') as tar, $FILES entries; median of $RUNS runs, $(nproc) cores"
echo
echo "| what | wall | peak RSS | vs depot |"
echo "|---|---|---|---|"
P=$(m pull.s); C=$(m curl.s)
echo "| depot lxc pull (fetch, sha256, store) | ${P} s | $(mb pull.kb) | 1.00 |"
echo "| curl -o /dev/null | ${C} s | $(mb curl.kb) | $(awk -v a="$C" -v b="$P" 'BEGIN{printf "%.2f", a/b}') |"
CS=$(m curlsum.s)
echo "| curl -o FILE, sha256sum, sync -f | ${CS} s | — | $(awk -v a="$CS" -v b="$P" 'BEGIN{printf "%.2f", a/b}') |"
[ "${ONLY:-}" = pull ] && exit 0
U=$(m unpack.s); T=$(m tar.s); TS=$(m tarsync.s)
echo "| depot lxc unpack (incl. syncfs) | ${U} s | $(mb unpack.kb) | 1.00 |"
echo "| GNU tar -xpJf | ${T} s | $(mb tar.kb) | $(awk -v a="$T" -v b="$U" 'BEGIN{printf "%.2f", a/b}') |"
echo "| GNU tar -xpJf, then sync -f | ${TS} s | — | $(awk -v a="$TS" -v b="$U" 'BEGIN{printf "%.2f", a/b}') |"
