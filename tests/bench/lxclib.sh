# Shared by the LXC and bundle benchmarks (sourced, with $W a work directory and $ROOT the repository): the bench
# rootfs template, and an lxc-download tree serving it.

# bench_rootfs: ROOTFS, a rootfs.tar.xz of at least 200 MB (compressed), made once per machine from a debootstrap
# minbase Debian tree plus real binaries and data from this machine's /usr (cached in /var/cache/depot-tests);
# SIZE and TARSIZE, its compressed and uncompressed sizes.
bench_rootfs() {
  local cache=/var/cache/depot-tests
  ROOTFS=$cache/bench-rootfs.tar.xz
  if [ ! -s "$ROOTFS" ]; then
    # the Debian rootfs of the tests (tests/peers/lxc.sh builds and caches it), made larger with real files
    [ -s "$cache/debian-bookworm-minbase.tar.xz" ] || tests/peers/lxc.sh "$W/peers" > "$W/peers.log" 2>&1 || true
    [ -s "$cache/debian-bookworm-minbase.tar.xz" ] || { echo "no debootstrap rootfs: see $W/peers.log" >&2; exit 1; }
    mkdir -p "$W/tree"
    tar --numeric-owner --xattrs --xattrs-include='*' -xpJf "$cache/debian-bookworm-minbase.tar.xz" -C "$W/tree"
    mkdir -p "$W/tree/opt/host"
    for d in /usr/lib/x86_64-linux-gnu /usr/lib/python3* /usr/share/locale /usr/share/doc /usr/bin /usr/libexec; do
      [ -e "$d" ] && cp -a "$d" "$W/tree/opt/host/" 2>/dev/null || true
    done
    echo "bench rootfs tree: $(du -sh "$W/tree" | cut -f1)"
    tar --numeric-owner --xattrs --xattrs-include='*' -C "$W/tree" -cf - . | xz -T2 -3 > "$ROOTFS.part"
    mv "$ROOTFS.part" "$ROOTFS"
    rm -rf "$W/tree"
  fi
  SIZE=$(stat -c %s "$ROOTFS")
  TARSIZE=$(xz -dc -T2 "$ROOTFS" | wc -c)
}

# serve_bench_tree: the template `bench/1/amd64/default` (build $B) in an lxc-download tree under $W/srv, served by
# nginx on 127.0.0.1:$PORT (NPID: end it at exit).
serve_bench_tree() {
  B=20261201_00:00
  local d=$W/srv/images/bench/1/amd64/default/$B
  mkdir -p "$d" "$W/srv/meta/1.0" "$W/nginx"
  chmod 755 "$W"   # nginx's worker runs as another user
  ln "$ROOTFS" "$d/rootfs.tar.xz" 2>/dev/null || cp "$ROOTFS" "$d/rootfs.tar.xz"
  tar -C "$ROOT/tests/bench" -cJf "$d/meta.tar.xz" --transform 's/.*/create-message/' lxc.sh
  (cd "$d" && sha256sum rootfs.tar.xz meta.tar.xz > SHA256SUMS)
  echo "bench;1;amd64;default;$B;/images/bench/1/amd64/default/$B/" > "$W/srv/meta/1.0/index-system"
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat > "$W/nginx/nginx.conf" <<EOC
daemon off; worker_processes 1; pid $W/nginx/pid; error_log $W/nginx/error.log warn;
events { worker_connections 64; }
http { access_log off; sendfile on; server { listen 127.0.0.1:$PORT; root $W/srv; } }
EOC
  /usr/sbin/nginx -c "$W/nginx/nginx.conf" -p "$W/nginx" &
  NPID=$!
  for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/meta/1.0/index-system" && break; sleep 0.05; done
  curl -sf -o /dev/null "http://127.0.0.1:$PORT/meta/1.0/index-system" || { echo "nginx did not serve $W/srv" >&2; exit 1; }
}
