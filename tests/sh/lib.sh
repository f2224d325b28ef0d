# Shared by tests/run, cross/check and tests/torture/run: stage timing, the packages the tests need, the peers.
# Source it from the repository's root; every function is safe to call on a fresh machine (as root).

RUN_START=$(date +%s)
STAGES=()
stage_start() { STAGE=$1; STAGE_T0=$(date +%s); echo "== $1"; }
stage_end() {
  local s=$(( $(date +%s) - STAGE_T0 ))
  STAGES+=("$STAGE|$s")
  echo "   $STAGE: $s s"
}
# The table of stages; keeps the exit status of the script that calls it from its EXIT trap.
report() {
  local rc=$?
  echo
  echo "| stage | seconds |"
  echo "|---|---|"
  for x in "${STAGES[@]}"; do echo "| ${x%%|*} | ${x##*|} |"; done
  echo "| total | $(( $(date +%s) - RUN_START )) |"
  return $rc
}

# Debian packages (apt-get update first, only when something is missing), docker-py and cargo-nextest.
install_test_deps() {
  local need=()
  have() { command -v "$1" >/dev/null 2>&1; }
  have docker-registry || need+=(docker-registry)
  have htpasswd || need+=(apache2-utils)
  have skopeo || need+=(skopeo)
  have umoci || need+=(umoci)
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" || need+=(busybox-static)   # static: it runs in the QTS chroot
  have jq || need+=(jq)
  have dockerd || need+=(docker.io)   # dockerd: the container engine of the hand-off tests; docker: the CLI
  have docker || need+=(docker.io)
  have openssl || need+=(openssl)
  have curl || need+=(curl)
  have zstd || need+=(zstd)
  have fusermount3 || need+=(fuse3)   # the power-cut torture's lazyfs (as root it mounts without it)
  [ -x /usr/sbin/nginx ] || need+=(nginx-light)   # serves the LXC image server trees (Range, real HTTP)
  have debootstrap || need+=(debootstrap)   # the Debian rootfs template of the LXC tests (built once, cached)
  have xz || need+=(xz-utils)
  have python3 || need+=(python3)
  python3 -c 'import cryptography' 2>/dev/null || need+=(python3-cryptography)
  have chromium || need+=(chromium)   # the browser test (selenium from PyPI, below, drives it)
  have chromedriver || need+=(chromium-driver)
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
  # for the python3 first on PATH (a pyenv one does not see Debian's python3-* packages)
  pyneed=()
  python3 -c 'import docker' 2>/dev/null || pyneed+=(docker)
  python3 -c 'import selenium' 2>/dev/null || pyneed+=(selenium)
  if [ ${#pyneed[@]} -gt 0 ]; then
    python3 -m pip install -q "${pyneed[@]}" 2>/dev/null || python3 -m pip install -q --break-system-packages "${pyneed[@]}"
  fi
  have cargo-nextest || cargo install --locked cargo-nextest
  [ -e /dev/fuse ] || modprobe fuse 2>/dev/null || echo "no /dev/fuse: the power-cut torture will fail" >&2
}

# Start the peers (tests/peers/up.sh) in target/peers, stopped again when the calling script exits; exports
# DEPOT_TEST_PEERS and the peers' addresses ($PLAIN, …).
start_peers() {
  PEERS=$ROOT/target/peers
  mkdir -p "$PEERS"
  tests/peers/down.sh "$PEERS"
  trap 'tests/peers/down.sh "$PEERS"; report' EXIT
  tests/peers/up.sh "$PEERS" > "$PEERS/up.log" 2>&1 || { cat "$PEERS/up.log"; exit 1; }
  export DEPOT_TEST_PEERS=$PEERS
  . "$PEERS/env"
}
