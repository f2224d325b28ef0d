#!/usr/bin/env bash
# Load benchmark: 100 concurrent API clients against one daemon (release build), each making REQS requests on
# its own connection — image lists, pings, inspect-style deletes of absent images (404s) and pulls of an image
# that is already there (the whole pull path but no bytes). Samples the daemon's thread count and reads its peak
# RSS (VmHWM). Not a test: nothing is asserted.
#   tests/bench/load.sh                uses $DEPOT_TEST_PEERS if set, else starts its own peers
#   CLIENTS=100 REQS=50 tests/bench/load.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CLIENTS=${CLIENTS:-100}
REQS=${REQS:-50}
. tests/bench/lib.sh
bench_bin

"$BIN" serve --data-root "$W/root" --log-level warn 2>"$W/depot.log" &
DPID=$!
until curl -sf --unix-socket "$W/root/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
for r in test:1 multi:1 multiarch:1; do
  curl -sf --unix-socket "$W/root/depot.sock" -X POST "http://x/images/create?fromImage=$PLAIN/${r%%:*}&tag=${r##*:}" >/dev/null
done
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/$DPID/status")
idle_threads=$(awk '/Threads/ {print $2}' "/proc/$DPID/status")
# thread-count sampler
( max=0; while kill -0 "$DPID" 2>/dev/null; do
    t=$(awk '/Threads/ {print $2}' "/proc/$DPID/status" 2>/dev/null || echo 0)
    [ "$t" -gt "$max" ] && max=$t && echo "$max" > "$W/threads"
    sleep 0.005
  done ) &
SPID=$!
start=$(date +%s.%N)
python3 - "$W/root/depot.sock" "$CLIENTS" "$REQS" "$PLAIN" > "$W/clients" <<'PY'
import http.client, socket, sys, threading, time
sock, clients, reqs, plain = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
class Conn(http.client.HTTPConnection):
    def __init__(self): super().__init__("depot", timeout=120)
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sock)
paths = [("GET", "/v1.47/images/json"), ("GET", "/_ping"), ("DELETE", "/v1.47/images/absent:1"),
         ("POST", f"/v1.47/images/create?fromImage={plain}/test&tag=1")]
codes, lat, lock = {}, [], threading.Lock()
barrier = threading.Barrier(clients)
def client(i):
    c = Conn(); barrier.wait()
    for n in range(reqs):
        m, p = paths[(i + n) % len(paths)]
        t = time.monotonic(); c.request(m, p); r = c.getresponse(); r.read()
        with lock: codes[r.status] = codes.get(r.status, 0) + 1; lat.append(time.monotonic() - t)
ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(len(lat), ",".join(f"{k}:{v}" for k, v in sorted(codes.items())),
      f"{lat[len(lat)//2]*1000:.1f}", f"{lat[int(len(lat)*0.99)]*1000:.1f}")
PY
end=$(date +%s.%N)
read -r n codes p50 p99 < "$W/clients"
peak=$(awk '/VmHWM/ {print $2}' "/proc/$DPID/status")
threads=$(cat "$W/threads" 2>/dev/null || echo "$idle_threads")
cat <<T
| $CLIENTS clients x $REQS requests | value |
|---|---|
| requests answered (status:count) | $n ($codes) |
| wall time | $(awk "BEGIN{printf \"%.2f s\", $end-$start}") |
| latency p50 / p99 | $p50 ms / $p99 ms |
| daemon RSS idle (3 images) | $(awk "BEGIN{printf \"%.1f MB\", $idle_rss/1000}") |
| daemon peak RSS (VmHWM) | $(awk "BEGIN{printf \"%.1f MB\", $peak/1000}") |
| daemon threads idle / peak | $idle_threads / $threads |
T
