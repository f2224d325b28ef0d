#!/usr/bin/env bash
# Station API load: CLIENTS concurrent clients (default 200), each on its own keep-alive TCP connection with the
# session cookie, alternately polling GET /api/v1/image/downloadstatus and listing GET /api/v1/image/ for SECONDS
# (default 20) while 3 downloads run (the 505 MB image from the plain registry, its pull-through mirror, and a
# copy of it in the basic-auth registry through depot's stored credentials, under a bandwidth limit so that they
# outlast the load; the three share their blobs, so one transfers while the others wait on its claims). Prints requests, errors,
# p50/p99/max latency and the daemon's peak RSS and RssAnon. No peer serves this API here (Container Station is not
# installable on this machine): the table has depot's row only. Not a test: nothing is asserted.
#   tests/bench/station.sh        CLIENTS=200 SECONDS_=20
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CLIENTS=${CLIENTS:-200}
DURATION=${SECONDS_:-20}
. tests/bench/lib.sh
bench_bin
# the third source: a copy of the big image in the basic-auth registry
skopeo copy -q --src-tls-verify=false --dest-tls-verify=false --dest-creds testuser:testpass \
  "docker://$PLAIN/big:1" "docker://$BASIC/bench-station-$$/big:1"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" serve --data-root "$W/root" --tcp "127.0.0.1:$PORT" --bandwidth-limit 15M --log-level warn 2>"$W/depot.log" &
DPID=$!
until curl -sf --unix-socket "$W/root/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
sock() { curl -sf --unix-socket "$W/root/depot.sock" "$@"; }
# the basic-auth registry's credentials, kept by depot
sock -X POST -H 'Content-Type: application/json' \
  --data "{\"name\":\"basic\",\"url\":\"http://$BASIC\",\"username\":\"testuser\",\"password\":\"testpass\"}" \
  http://x/api/v1/registry/ >/dev/null
for name in "$PLAIN/big" "$MIRROR/big" "$BASIC/bench-station-$$/big"; do
  sock -X POST "http://x/api/v1/image/dockerhub/docker/$name/1/download" >/dev/null
done
# the session is opened here, before the measured window: one login's argon2id check maps its 19 MiB for the
# check's duration (then unmaps it), which is not the load's cost
cookie=$(curl -sf -D - -o /dev/null -H 'Content-Type: application/json' \
  --data "{\"username\":\"admin\",\"password\":\"$(cat "$W/root/admin-password")\"}" \
  "http://127.0.0.1:$PORT/api/v1/login" | awk -F'[ ;]' 'tolower($1)=="set-cookie:" {print $2}')
rss0=$(awk '/VmRSS/ {printf "%.1f", $2/1000}' /proc/$DPID/status)
login_hwm=$(awk '/VmHWM/ {printf "%.1f", $2/1000}' /proc/$DPID/status)
# VmHWM reset (clear_refs 5) so that the peak printed is the load's
echo 5 > "/proc/$DPID/clear_refs"
sample_anon_peak "$DPID" "$W/anon.peak"
cat > "$W/load.py" <<'PY'
import http.client, sys, threading, time, json
port, clients, duration, cookie = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
lat, errors, lock = [], [0], threading.Lock()
start = threading.Barrier(clients)
def client(i):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    mine, bad = [], 0
    paths = ["/api/v1/image/downloadstatus", "/api/v1/image/?category=local"]
    start.wait()
    end = time.monotonic() + duration
    k = i
    while time.monotonic() < end:
        t = time.monotonic()
        try:
            conn.request("GET", paths[k % 2], headers={"Cookie": cookie})
            r = conn.getresponse(); body = r.read()
            if r.status != 200 or not body: bad += 1
        except Exception:
            bad += 1
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine.append(time.monotonic() - t)
        k += 1
    with lock:
        lat.extend(mine); errors[0] += bad
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
t0 = time.monotonic()
for t in threads: t.start()
for t in threads: t.join()
wall = time.monotonic() - t0
lat.sort()
ms = lambda x: f"{x * 1000:.1f} ms"
print(f"| depot | {clients} | {len(lat)} | {len(lat) / wall:.0f}/s | {errors[0]} | {ms(lat[len(lat) // 2])} | "
      f"{ms(lat[int(len(lat) * 0.99) - 1])} | {ms(lat[-1])} |", end="")
PY
echo "| daemon | clients | requests | rate | errors | p50 | p99 | max | RSS before | peak RSS | peak RssAnon |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
python3 "$W/load.py" "$PORT" "$CLIENTS" "$DURATION" "$cookie"
kill "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null || true; CPID=
echo " $rss0 MB | $(awk '/VmHWM/ {printf "%.1f MB", $2/1000}' /proc/$DPID/status) |" \
  "$(awk '{printf "%.1f MB", $1/1000}' "$W/anon.peak") |"
running=$(sock http://x/api/v1/image/downloadstatus | python3 -c 'import json,sys; print(sum(1 for d in json.load(sys.stdin) if d["status"] in ("downloading","waiting")))')
echo
echo "peak RSS up to the login (its argon2id check included): $login_hwm MB; the columns above are the load's"
echo "downloads still running at the end: $running of 3 (a bandwidth limit of 15 MB/s keeps them going)"
