#!/usr/bin/env bash
# Save, load and push of the 505 MB, 4-layer big:1 image: depot (dist build) beside dockerd 20.10 (vfs), in one
# run on one machine. Wall time of the docker CLI command (the same CLI against both daemons) and the daemon's
# peak RSS over the three operations. Not a test: nothing is asserted.
#   tests/bench/archive.sh          uses $DEPOT_TEST_PEERS if set, else starts its own peers
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. tests/bench/lib.sh
bench_bin
IMG=$PLAIN/big:1
now() { date +%s.%N; }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1000}' "/proc/$1/status"; }
run_for() { # name sock pid
  local name=$1 sock=$2 pid=$3
  export DOCKER_HOST=unix://$sock DOCKER_CONFIG=$W/dc-$name
  docker pull -q "$IMG" >/dev/null
  local t0 t1 t2 t3
  t0=$(now); docker save -o "$W/$name.tar" "$IMG"; t1=$(now)
  docker rmi "$IMG" >/dev/null
  docker load -q -i "$W/$name.tar" >/dev/null; t2=$(now)
  # another registry (htpasswd), an empty repository: every layer is uploaded, none mounted
  local dst="$BASIC/bench-$name-$$/big:1"
  echo testpass | docker login -u testuser --password-stdin "$BASIC" >/dev/null 2>&1
  docker tag "$IMG" "$dst"
  docker push -q "$dst" >/dev/null; t3=$(now)
  printf "| %s | %.2f s | %.2f s | %.2f s | %s MB |\n" "$name" "$(echo "$t1 - $t0" | bc)" "$(echo "$t2 - $t1" | bc)" \
    "$(echo "$t3 - $t2" | bc)" "$(hwm "$pid")"
  rm -f "$W/$name.tar"
}
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
echo "| daemon | save | load | push | peak RSS |"
echo "|---|---|---|---|---|"
"$BIN" serve --data-root "$W/depot" --log-level warn 2>"$W/depot.log" &
DPID=$!
until curl -sf --unix-socket "$W/depot/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
run_for depot "$W/depot/depot.sock" "$DPID"
kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=
dockerd --host "unix://$W/dockerd.sock" --data-root "$W/dockerd" --exec-root "$W/dockerd-exec" \
  --pidfile "$W/dockerd.pid" --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
  --insecure-registry "$PLAIN" --insecure-registry "$BASIC" > "$W/dockerd.log" 2>&1 &
CPID=$!
until curl -sf --unix-socket "$W/dockerd.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.1; done
run_for dockerd "$W/dockerd.sock" "$CPID"
