#!/usr/bin/env bash
# The LAN registry: depot serving the 505 MB, 4-layer big:1 image to 1, 4 and 16 clients at once, beside the
# distribution registry (docker-registry, its filesystem driver) serving the same image, in the same run; then a
# pull-through miss (depot holds nothing; the image comes from the plain peer registry) beside the same client
# pulling from that registry directly. A client fetches the manifest, then its four layers one after the other
# (curl to /dev/null: the clients must not be what is measured on 2 cores). Plain HTTP on loopback for both
# servers (`OVER_TLS=1` serves depot with its issued certificate and the distribution
# registry with a certificate from the same CA). Server figures: CPU seconds (utime + stime), peak RSS (VmHWM,
# the servers restarted after the image went in) and RssAnon's peak. Not a test: nothing is asserted.
#   tests/bench/registry.sh          uses $DEPOT_TEST_PEERS if set, else starts its own peers
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
. tests/bench/lib.sh
bench_bin
command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
OVER_TLS=${OVER_TLS:-0}
now() { date +%s.%N; }
mb() { echo "scale=1; $1 / 1000" | bc; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
hwm() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }

DPORT=$(free_port); RPORT=$(free_port)
depot() { # data root, extra flags…
  local root=$1; shift
  "$BIN" serve --data-root "$root" --tcp none --log-level warn --registry "127.0.0.1:$DPORT" --registry-anonymous true \
    "$@" 2>>"$W/depot.log" &
  DPID=$!
  for _ in $(seq 1 500); do curl -sf --unix-socket "$root/depot.sock" http://x/_ping >/dev/null 2>&1 && return; sleep 0.01; done
  echo "depot did not start: $(tail -3 "$W/depot.log")" >&2; exit 1
}
stop() { kill "$DPID"; wait "$DPID" 2>/dev/null || true; DPID=; }
if [ "$OVER_TLS" = 1 ]; then
  SCHEME=https; DFLAGS=(); CURL=(--cacert "$W/a/registry-tls/ca.crt")
else
  SCHEME=http; DFLAGS=(--registry-plain-http true); CURL=()
fi

# depot holds big:1 (pulled from the plain peer), then starts again: its peaks are the serving's alone
depot "$W/a" "${DFLAGS[@]}"
curl -sf --unix-socket "$W/a/depot.sock" -X POST "http://x/images/create?fromImage=$PLAIN/big&tag=1" >/dev/null
stop
depot "$W/a" "${DFLAGS[@]}"
DEPOT_URL="$SCHEME://127.0.0.1:$DPORT/v2/big"
DEPOT_NS="?ns=$PLAIN"

# the distribution registry with the same image, from its filesystem driver, started again after the push
mkdir -p "$W/dist"
dist_tls=""
if [ "$OVER_TLS" = 1 ]; then
  # a certificate from depot's own CA, so that one --cacert serves both
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$W/dist/key.pem" -out "$W/dist/csr.pem" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\n' > "$W/dist/ext.cnf"
  openssl x509 -req -in "$W/dist/csr.pem" -CA "$W/a/registry-tls/ca.crt" -CAkey "$W/a/registry-tls/ca.key" \
    -CAcreateserial -out "$W/dist/cert.pem" -days 2 -extfile "$W/dist/ext.cnf" 2>/dev/null
  dist_tls="tls: {certificate: $W/dist/cert.pem, key: $W/dist/key.pem}"
fi
cat > "$W/dist/config.yml" <<EOC
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $W/dist/data}}
http: {addr: 127.0.0.1:$RPORT, secret: bench, $dist_tls}
EOC
start_dist() {
  /usr/bin/docker-registry serve "$W/dist/config.yml" > "$W/dist.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 200); do curl -s -o /dev/null "${CURL[@]}" "$SCHEME://127.0.0.1:$RPORT/v2/" && return; sleep 0.05; done
  echo "the distribution registry did not start: $(tail -3 "$W/dist.log")" >&2; exit 1
}
start_dist
tls_flag=--dest-tls-verify=false
skopeo copy -q --src-tls-verify=false "$tls_flag" "docker://$PLAIN/big:1" "docker://127.0.0.1:$RPORT/big:1"
kill "$SPID"; wait "$SPID" 2>/dev/null || true
start_dist
DIST_URL="$SCHEME://127.0.0.1:$RPORT/v2/big"

ACCEPT="Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
# client BASE QUERY: the manifest, then each layer to /dev/null; prints the bytes of layers fetched
client() {
  local base=$1 q=$2 m total=0
  m=$(curl -sf "${CURL[@]}" -H "$ACCEPT" "$base/manifests/1$q")
  for d in $(echo "$m" | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))'); do
    n=$(curl -sf "${CURL[@]}" -o /dev/null -w '%{size_download}' "$base/blobs/$d$q")
    total=$((total + n))
  done
  echo "$total"
}
# serve NAME PID BASE QUERY CLIENTS: one row
serve() {
  local name=$1 pid=$2 base=$3 q=$4 n=$5 t0 t1 c0 c1 s bytes=0
  sample_anon_peak "$pid" "$W/anon-$name-$n"
  local pids=()
  c0=$(cpu_s "$pid"); t0=$(now)
  for i in $(seq 1 "$n"); do client "$base" "$q" > "$W/c$i" & pids+=($!); done
  wait "${pids[@]}"
  t1=$(now); c1=$(cpu_s "$pid")
  kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; CPID=
  for i in $(seq 1 "$n"); do bytes=$((bytes + $(cat "$W/c$i"))); done
  s=$(echo "$t1 - $t0" | bc)
  printf "| %s | %d | %.2f s | %.0f | %.2f s | %s MB | %s MB |\n" "$name" "$n" "$s" "$(echo "$bytes / 1000000 / $s" | bc -l)" \
    "$(echo "$c1 - $c0" | bc)" "$(mb "$(hwm "$pid")")" "$(mb "$(cat "$W/anon-$name-$n" 2>/dev/null || echo 0)")"
}
# the page cache holds both stores' copies before anything is timed
client "$DEPOT_URL" "$DEPOT_NS" >/dev/null; client "$DIST_URL" "" >/dev/null

echo "serving big:1 (505 MB, 4 layers) over $SCHEME on loopback; each client: the manifest, then its layers one by one"
echo
echo "| server | clients | wall | MB/s (all clients) | server CPU | peak RSS | peak RssAnon |"
echo "|---|---|---|---|---|---|---|"
for n in 1 4 16; do
  serve depot "$DPID" "$DEPOT_URL" "$DEPOT_NS" "$n"
  serve distribution "$SPID" "$DIST_URL" "" "$n"
done
stop
kill "$SPID"; wait "$SPID" 2>/dev/null || true; SPID=

# a pull-through miss: a depot that holds nothing, the image from the plain peer; the same client straight
# from the plain peer beside it. Time to the first byte of the first layer, and to the last byte of all four.
echo
echo "| pull-through miss of big:1 | first layer byte | all four layers | peak RSS | peak RssAnon |"
echo "|---|---|---|---|---|"
miss() { # name base query [pid]
  local name=$1 base=$2 q=$3 pid=${4:-} t0 m d t1 ts="" pids=()
  [ -n "$pid" ] && sample_anon_peak "$pid" "$W/anon-miss"
  t0=$(now)
  m=$(curl -sf "${CURL[@]}" -H "$ACCEPT" "$base/manifests/1$q")
  for d in $(echo "$m" | python3 -c 'import json,sys; print(" ".join(l["digest"] for l in json.load(sys.stdin)["layers"]))'); do
    [ -z "$ts" ] && ts=$(now)
    curl -sf "${CURL[@]}" -o /dev/null -w '%{time_starttransfer}' "$base/blobs/$d$q" > "$W/ttfb-${#pids[@]}" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(now)
  # the first layer's first byte: when its request went out, plus curl's time to its first byte
  local first; first=$(echo "$ts - $t0 + $(cat "$W/ttfb-0")" | bc)
  if [ -n "$pid" ]; then
    kill "$CPID" 2>/dev/null || true; wait "$CPID" 2>/dev/null || true; CPID=
    printf "| %s | %.2f s | %.2f s | %s MB | %s MB |\n" "$name" "$first" "$(echo "$t1 - $t0" | bc)" "$(mb "$(hwm "$pid")")" "$(mb "$(cat "$W/anon-miss" 2>/dev/null || echo 0)")"
  else
    printf "| %s | %.2f s | %.2f s | | |\n" "$name" "$first" "$(echo "$t1 - $t0" | bc)"
  fi
}
depot "$W/b" "${DFLAGS[@]}"
[ "$OVER_TLS" = 1 ] && CURL=(--cacert "$W/b/registry-tls/ca.crt")
miss "depot, pulling through from the plain peer" "$SCHEME://127.0.0.1:$DPORT/v2/big" "?ns=$PLAIN" "$DPID"
stop
CURL=()
miss "the same client, straight from the plain peer" "http://$PLAIN/v2/big" ""
