#!/usr/bin/env bash
# Listing benchmark: GET /images/json with N images (default 1000, each a distinct one-layer image imported
# through the API) on one daemon (dist build), REQS requests over one connection; prints p50/p99/max.
# Not a test: nothing is asserted.
#   tests/bench/list.sh            N=1000 REQS=300
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
N=${N:-1000}
REQS=${REQS:-300}
BIN=${DEPOT_BIN:-$ROOT/target/dist/depot}
[ -n "${DEPOT_BIN:-}" ] || cargo build --profile dist --quiet
W=$(mktemp -d /tmp/depot-list.XXXXXX)
trap '[ -n "${DPID:-}" ] && kill "$DPID" 2>/dev/null; rm -rf "$W"' EXIT
"$BIN" serve --data-root "$W/root" --log-level warn 2>"$W/depot.log" &
DPID=$!
until curl -sf --unix-socket "$W/root/depot.sock" http://x/_ping >/dev/null 2>&1; do sleep 0.01; done
python3 - "$W/root/depot.sock" "$N" "$REQS" <<'PY'
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
    c.request("POST", f"/v1.47/images/create?fromSrc=-&repo=bench/img{i % 50}&tag=t{i}", body=buf.getvalue(),
              headers={"Content-Type": "application/x-tar"})
    r = c.getresponse(); r.read()
    assert r.status == 200
made = time.monotonic() - t0
lat = []
for _ in range(reqs):
    t = time.monotonic(); c.request("GET", "/v1.47/images/json"); r = c.getresponse(); body = r.read()
    lat.append(time.monotonic() - t)
    assert r.status == 200
count = body.count(b'"Id"')
lat.sort()
ms = lambda x: f"{x * 1000:.2f} ms"
print(f"| images listed | {count} (imported in {made:.1f} s) |")
print("|---|---|")
print(f"| GET /images/json p50 | {ms(lat[len(lat) // 2])} |")
print(f"| GET /images/json p99 | {ms(lat[int(len(lat) * 0.99) - 1])} |")
print(f"| GET /images/json max | {ms(lat[-1])} |")
print(f"| response size | {len(body)} bytes |")
PY
echo "| daemon peak RSS | $(awk '/VmHWM/ {printf "%.1f MB", $2/1000}' /proc/$DPID/status) |"
