#!/usr/bin/env bash
# Pull benchmark: the 505 MB, 4-layer big:1 image from a loopback registry, by depot (dist build), by
# `skopeo copy … oci:` and, when containerd is installed, by `ctr images pull`, in one run on one machine.
# Prints wall time and peak RSS (median of RUNS) and the ratios to depot. Not a test: nothing is asserted.
#   tests/bench/pull.sh            uses $DEPOT_TEST_PEERS if set, else starts its own peers
#   RUNS=5 tests/bench/pull.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
RUNS=${RUNS:-3}
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --profile dist --quiet
BIN=$ROOT/target/dist/depot
. tests/bench/lib.sh
IMG=$PLAIN/big:1

hwm_kb() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

for i in $(seq 1 "$RUNS"); do
  # depot: fresh data root each run; wall = the client command; RSS = the daemon's peak
  rm -rf "$W/depot"
  t0=$(now)
  "$BIN" serve --data-root "$W/depot" --tcp none --log-level warn 2>"$W/depot.log" &
  DPID=$!
  until curl -sf --unix-socket "$W/depot/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.005; done
  t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.1f\n", ($2-$1)*1000}' >> "$W/ready.ms"
  hwm_kb $DPID >> "$W/idle.kb"
  t0=$(now)
  DEPOT_SOCKET=$W/depot/depot.sock "$BIN" pull "$IMG" > /dev/null
  t1=$(now)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/depot.s"
  hwm_kb $DPID >> "$W/depot.kb"
  kill $DPID; wait $DPID 2>/dev/null || true; DPID=

  # skopeo into an OCI layout
  rm -rf "$W/oci"
  /usr/bin/time -f "%e %M" -o "$W/skopeo.one" skopeo copy --quiet --src-tls-verify=false "docker://$IMG" "oci:$W/oci:big"
  awk '{print $1}' "$W/skopeo.one" >> "$W/skopeo.s"; awk '{print $2}' "$W/skopeo.one" >> "$W/skopeo.kb"

  # containerd, if present: fresh root each run; RSS = the daemon's peak
  if command -v containerd >/dev/null && command -v ctr >/dev/null; then
    rm -rf "$W/ctrd"; mkdir -p "$W/ctrd"
    cat > "$W/ctrd/config.toml" <<EOC
version = 2
root = "$W/ctrd/root"
state = "$W/ctrd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$W/ctrd/sock"
EOC
    containerd --config "$W/ctrd/config.toml" > "$W/ctrd.log" 2>&1 &
    CPID=$!
    until ctr -a "$W/ctrd/sock" version >/dev/null 2>&1; do sleep 0.05; done
    t0=$(now)
    ctr -a "$W/ctrd/sock" images pull --plain-http "$IMG" > /dev/null
    t1=$(now)
    echo "$t0 $t1" | awk '{printf "%.3f\n", $2-$1}' >> "$W/ctr.s"
    hwm_kb $CPID >> "$W/ctr.kb"
    kill $CPID; wait $CPID 2>/dev/null || true; CPID=
  fi
done

row() { # name seconds-file kb-file
  local s kb
  s=$(median < "$W/$2"); kb=$(median < "$W/$3")
  printf "| %-34s | %8.2f s | %8.1f MB | %7.2fx | %7.2fx |\n" "$1" "$s" "$(echo "$kb/1024" | bc -l)" \
    "$(echo "$s/$DS" | bc -l)" "$(echo "$kb/$DKB" | bc -l)"
}
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
DS=$(median < "$W/depot.s"); DKB=$(median < "$W/depot.kb")
SIZE=$(du -sb "$W/oci/blobs" | cut -f1)
echo
echo "pull of big:1 ($SIZE bytes in blobs) from a loopback registry, $(nproc) cores, median of $RUNS runs"
echo
echo "| what                               |     wall   | peak RSS    | wall/depot | RSS/depot |"
echo "|------------------------------------|------------|-------------|---------|---------|"
row "depot pull (daemon RSS)" depot.s depot.kb
row "skopeo copy docker:// oci:" skopeo.s skopeo.kb
[ -s "$W/ctr.s" ] && row "ctr images pull (containerd RSS)" ctr.s ctr.kb
echo
printf "depot: ready to serve in %s ms (median), idle RSS %.1f MB\n" "$(median < "$W/ready.ms")" "$(echo "$(median < "$W/idle.kb")/1024" | bc -l)"
