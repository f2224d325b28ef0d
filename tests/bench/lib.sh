# Shared by the benchmark scripts (sourced): a work directory removed at exit, the test peers (those of
# $DEPOT_TEST_PEERS, else started here and stopped at exit), the daemon and helper PIDs ended at exit, and
# bench_bin (the binary measured).
W=$(mktemp -d /tmp/depot-bench.XXXXXX)
bench_cleanup() {
  # the daemon is stopped and waited for before its data root is removed under it
  [ -n "${DPID:-}" ] && { kill "$DPID" 2>/dev/null; wait "$DPID" 2>/dev/null; } || true
  [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null || true
  [ -n "${SPID:-}" ] && kill "$SPID" 2>/dev/null || true
  [ -n "${NPID:-}" ] && { kill "$NPID" 2>/dev/null; wait "$NPID" 2>/dev/null; } || true
  [ -n "${OWN_PEERS:-}" ] && tests/peers/down.sh "$OWN_PEERS"
  rm -rf "$W"
}
trap bench_cleanup EXIT
if [ -z "${DEPOT_TEST_PEERS:-}" ] || [ ! -f "$DEPOT_TEST_PEERS/env" ]; then
  OWN_PEERS=$W/peers
  tests/peers/up.sh "$OWN_PEERS" > "$W/peers.log" 2>&1
  DEPOT_TEST_PEERS=$OWN_PEERS
fi
. "$DEPOT_TEST_PEERS/env"

# BIN: the depot binary measured, $DEPOT_BIN, else the shipped dist build (built now).
bench_bin() {
  BIN=${DEPOT_BIN:-$ROOT/target/dist/depot}
  [ -n "${DEPOT_BIN:-}" ] || cargo build --profile dist --quiet
}

# sample_anon_peak PID FILE: RssAnon's peak (kB) written to FILE, sampled every 10 ms in the background (CPID) while
# PID lives. The kernel keeps a peak of the whole RSS only (VmHWM), which also counts the binary's code pages.
sample_anon_peak() {
  local pid=$1 file=$2
  ( peak=0; while kill -0 "$pid" 2>/dev/null; do
      a=$(awk '$1=="RssAnon:" {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
      [ "${a:-0}" -gt "$peak" ] && { peak=$a; echo "$peak" > "$file"; }
      sleep 0.01
    done ) &
  CPID=$!
}
