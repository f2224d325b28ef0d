#!/usr/bin/env bash
# Listing benchmark: GET /images/json with N images (default 1000, each a distinct one-layer image imported
# through the API), REQS requests over one connection: depot (dist build), then dockerd 20.10 (overlay2) when it
# is installed, in the same run. Prints p50/p99/max per daemon. Not a test: nothing is asserted.
#   tests/bench/list.sh            N=1000 REQS=300
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
N=${N:-1000}
REQS=${REQS:-300}
BIN=${DEPOT_BIN:-$ROOT/target/dist/depot}
[ -n "${DEPOT_BIN:-}" ] || cargo build --profile dist --quiet
W=$(mktemp -d /tmp/depot-list.XXXXXX)
trap '[ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null; [ -n "${CPID:-}" ] && kill "$CPID" 2>/dev/null; rm -rf "$W"' EXIT
cat > "$W/bench.py" <<'PY'
import http.client, io, socket, sys, tarfile, time
sock, n, reqs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
class Conn(http.client.HTTPConnection):
    def __init__(self): super().__init__("depot", timeout=120)
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(sock)
c = Conn()
t0 = time.monotonic()
for i in range(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        data = f"image {i}\n".encode()
        info = tarfile.TarInfo(f"etc/id-{i}"); info.size = len(data)
        t.addfile(info, io.BytesIO(data))
    c.request("POST", f"/v1.41/images/create?fromSrc=-&repo=bench/img{i % 50}&tag=t{i}", body=buf.getvalue(),
              headers={"Content-Type": "application/x-tar"})
    r = c.getresponse(); r.read()
    assert r.status == 200
made = time.monotonic() - t0
lat = []
for _ in range(reqs):
    t = time.monotonic(); c.request("GET", "/v1.41/images/json"); r = c.getresponse(); body = r.read()
    lat.append(time.monotonic() - t)
    assert r.status == 200
count = body.count(b'"Id"')
lat.sort()
ms = lambda x: f"{x * 1000:.2f} ms"
print(f"| {sys.argv[4]} | {count} | {ms(lat[len(lat) // 2])} | {ms(lat[int(len(lat) * 0.99) - 1])} | "
      f"{ms(lat[-1])} | {len(body)} B |", end="")
PY
echo "| daemon | images | p50 | p99 | max | response | peak RSS |"
echo "|---|---|---|---|---|---|---|"
"$BIN" serve --data-root "$W/root" --log-level warn 2>"$W/depot.log" &
DPID=$!
until curl -sf --unix-socket "$W/root/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
python3 "$W/bench.py" "$W/root/depot.sock" "$N" "$REQS" depot
echo " $(awk '/VmHWM/ {printf "%.1f MB", $2/1000}' /proc/$DPID/status) |"
kill "$DPID"; DPID=
if command -v dockerd >/dev/null; then
  dockerd --host "unix://$W/dockerd.sock" --data-root "$W/dockerd" --exec-root "$W/dockerd-exec" \
    --pidfile "$W/dockerd.pid" --iptables=false --ip-masq=false --bridge=none --storage-driver=overlay2 \
    > "$W/dockerd.log" 2>&1 &
  CPID=$!
  until curl -sf --unix-socket "$W/dockerd.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.1; done
  python3 "$W/bench.py" "$W/dockerd.sock" "$N" "$REQS" dockerd
  echo " $(awk '/VmHWM/ {printf "%.1f MB", $2/1000}' /proc/$CPID/status) |"
fi
