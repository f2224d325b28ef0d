#!/usr/bin/env bash
# Start the real peers depot's integration tests pull from, all on 127.0.0.1 with free ports, and push the test
# images into them. Writes DIR/env (sourced by the tests). Stop them with tests/peers/down.sh DIR.
#   plain  registry, no auth
#   basic  registry with htpasswd (testuser/testpass)
#   token  registry with bearer tokens (tests/peers/token_server.py; anonymous pull of public/*)
#   token2 a second token registry whose token server refuses GET once the images are pushed (POST form only)
#   tls    registry serving HTTPS with a certificate from a test CA (DIR/tls/ca/ca.crt), no auth
#   mirror a pull-through cache of plain (the distribution registry's proxy mode), for registry mirrors
set -euo pipefail
P=$(realpath -m "${1:?usage: up.sh DIR}")
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$P/run" "$P/logs"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -s -o /dev/null "$@" && return 0; sleep 0.1; done; echo "peer at $1 did not start" >&2; return 1; }

start_registry() { # name port [auth-yaml] [tls-yaml]
  local n=$1 port=$2 auth=${3:-} tls=${4:-}
  mkdir -p "$P/registry/$n"
  cat > "$P/registry/$n/config.yml" <<EOC
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $P/registry/$n/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: depot-test-secret, $tls}
$auth
EOC
  /usr/bin/docker-registry serve "$P/registry/$n/config.yml" > "$P/logs/registry-$n.log" 2>&1 &
  echo $! > "$P/run/registry-$n.pid"
  if [ -n "$tls" ]; then wait_http "https://127.0.0.1:$port/v2/" -k; else wait_http "http://127.0.0.1:$port/v2/"; fi
}

start_token() { # name registry-port [--no-get]
  local n=$1 port=$2 extra=${3:-}
  mkdir -p "$P/$n"
  [ -s "$P/$n/cert.pem" ] || openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/$n/key.pem" -out "$P/$n/cert.pem" \
      -days 3650 -subj "/CN=depot-test-token-issuer" 2>/dev/null
  rm -f "$P/$n/port"
  python3 "$HERE/token_server.py" "$P/$n/port" "$P/$n/key.pem" "$P/$n/cert.pem" depot-test-issuer testuser:testpass \
      "$P/$n/requests.jsonl" $extra > "$P/logs/$n.log" 2>&1 &
  echo $! > "$P/run/$n.pid"
  for _ in $(seq 1 100); do [ -s "$P/$n/port" ] && break; sleep 0.1; done
  local tport; tport=$(cat "$P/$n/port")
  start_registry "$n" "$port" "auth: {token: {realm: \"http://127.0.0.1:$tport/token\", service: depot-test-registry, issuer: depot-test-issuer, rootcertbundle: $P/$n/cert.pem}}"
}

start_tls() { # port
  mkdir -p "$P/tls/ca"
  if [ ! -s "$P/tls/server.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$P/tls/ca.key" -out "$P/tls/ca/ca.crt" -days 3650 \
      -subj "/CN=depot test CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout "$P/tls/server.key" -out "$P/tls/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' > "$P/tls/ext.cnf"
    openssl x509 -req -in "$P/tls/server.csr" -CA "$P/tls/ca/ca.crt" -CAkey "$P/tls/ca.key" -CAcreateserial \
      -out "$P/tls/server.crt" -days 3650 -extfile "$P/tls/ext.cnf" 2>/dev/null
  fi
  start_registry tls "$1" "" "tls: {certificate: $P/tls/server.crt, key: $P/tls/server.key}"
}

PLAIN=$(free_port); BASIC=$(free_port); TOKEN=$(free_port); TOKEN2=$(free_port); TLS=$(free_port); MIRROR=$(free_port)
mkdir -p "$P/registry/basic"
htpasswd -Bbn testuser testpass > "$P/registry/basic/htpasswd"
start_registry plain "$PLAIN"
start_registry basic "$BASIC" "auth: {htpasswd: {realm: basic-realm, path: $P/registry/basic/htpasswd}}"
start_token token "$TOKEN"
rm -f "$P/token2/no-get"   # left by an earlier run: images must be pushed with GET tokens first
start_token token2 "$TOKEN2" "$P/token2/no-get"
start_tls "$TLS"
start_registry mirror "$MIRROR" "proxy: {remoteurl: \"http://127.0.0.1:$PLAIN\"}"

cat > "$P/env" <<EOE
PLAIN=127.0.0.1:$PLAIN
BASIC=127.0.0.1:$BASIC
TOKEN=127.0.0.1:$TOKEN
TOKEN2=127.0.0.1:$TOKEN2
TLS=127.0.0.1:$TLS
TLS_CA=$P/tls/ca/ca.crt
MIRROR=127.0.0.1:$MIRROR
IMAGES=$P/images
EOE
"$HERE/make-images.sh" "$P"
"$HERE/lxc.sh" "$P"
touch "$P/token2/no-get"   # from now on token2 serves only the OAuth2 POST form
echo "peers up in $P"
