#!/usr/bin/env bash
# Memory of the daemon where DESIGN §7 sets budgets, beside the peers where a peer does the same thing: idle after a
# first start and after a restart (RSS and RssAnon: the anonymous part is what the daemon itself holds), after 60
# logins (two at a time), and the peak during a pull of the 505 MB image (depot's VmHWM beside skopeo's copy of the
# same image to a directory, and dockerd idle). 200 clients, 1,000 images and the LXC unpack have their own
# scripts (station.sh, list.sh, lxc.sh), which print peak RSS beside their peers. Not a test: nothing is asserted.
#   tests/bench/memory.sh                  on the dist binary (built here unless DEPOT_BIN names one)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. tests/bench/lib.sh
bench_bin

mem() { # PID FIELD… → MB, one decimal
  local pid=$1; shift
  for f in "$@"; do awk -v f="$f:" '$1==f {printf "%.1f ", $2/1000}' "/proc/$pid/status"; done
}
row() { printf "| %s | %s | %s | %s |\n" "$1" "$2" "$3" "$4"; }
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start() {
  "$BIN" serve --data-root "$W/root" --tcp "127.0.0.1:$PORT" --log-level warn 2>>"$W/depot.log" &
  DPID=$!
  until curl -sf --unix-socket "$W/root/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
  sleep 1
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }

echo "| what | depot RSS / RssAnon (MB) | peer | peer RSS / RssAnon (MB) |"
echo "|---|---|---|---|"
start
read -r rss anon hwm <<<"$(mem "$DPID" VmRSS RssAnon VmHWM)"
row "idle after a first start (TCP on)" "$rss / $anon (peak $hwm)" "" ""
stop
start
read -r rss anon hwm <<<"$(mem "$DPID" VmRSS RssAnon VmHWM)"
idle_anon=$anon
if command -v dockerd >/dev/null; then
  mkdir -p "$W/dockerd"
  dockerd --data-root "$W/dockerd/root" --exec-root "$W/dockerd/exec" --pidfile "$W/dockerd/pid" \
    -H "unix://$W/dockerd/sock" --bridge none --iptables=false --ip6tables=false >"$W/dockerd/log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 200); do [ -S "$W/dockerd/sock" ] && break; sleep 0.05; done
  sleep 2
  peer="dockerd $(dockerd --version | awk '{print $3}' | tr -d ,) idle"
  read -r prss panon <<<"$(mem "$SPID" VmRSS RssAnon)"
  row "idle after a restart" "$rss / $anon (peak $hwm)" "$peer" "$prss / $panon"
  kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=
else
  row "idle after a restart" "$rss / $anon (peak $hwm)" "" ""
fi
pw=$(cat "$W/root/admin-password")
for _ in $(seq 1 30); do
  pids=()
  for _ in 1 2; do
    curl -s -o /dev/null --data-urlencode username=admin --data-urlencode "password=$pw" \
      "http://127.0.0.1:$PORT/api/v1/login" &
    pids+=($!)
  done
  wait "${pids[@]}"
done
read -r rss anon <<<"$(mem "$DPID" VmRSS RssAnon)"
row "after 60 logins (idle RssAnon $idle_anon)" "$rss / $anon" "" ""
stop
start
sample_anon_peak "$DPID" "$W/anon.peak"
curl -s --unix-socket "$W/root/depot.sock" -X POST "http://x/images/create?fromImage=$PLAIN/big&tag=1" >/dev/null
read -r hwm file <<<"$(mem "$DPID" VmHWM RssFile)"
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null || true; CPID=
anon_peak=$(awk '{printf "%.1f", $1/1000}' "$W/anon.peak")
/usr/bin/time -f "%M" -o "$W/skopeo.max" skopeo copy -q --src-tls-verify=false "docker://$PLAIN/big:1" "dir:$W/skopeo-dir"
row "peak during a pull of the 505 MB image" "$hwm (VmHWM) / $anon_peak (sampled); the binary's code pages after: $file" "skopeo $(skopeo --version | awk '{print $3}') copy to dir:" \
  "$(awk '{printf "%.1f", $1/1000}' "$W/skopeo.max") (max RSS)"
stop
