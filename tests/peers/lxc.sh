#!/usr/bin/env bash
# LXC image servers for the tests: rootfs templates built here with GNU tar, served by nginx (Range requests,
# real HTTP) on 127.0.0.1 in two formats. Called by tests/peers/up.sh DIR; appends to DIR/env:
#   LXC_HTTP  127.0.0.1:PORT of nginx; /lxc is an lxc-download tree, /ss a simplestreams tree
#   LXC_DIR   the trees and the template files (LXC_DIR/busybox/rootfs.tar.xz, the tree it was made of, …)
#   DEBIAN_ROOTFS  a debootstrap --variant=minbase bookworm rootfs.tar.xz, built once and cached in
#             /var/cache/depot-tests (empty when it cannot be built here)
# Templates (amd64 unless said):
#   busybox/1.36          busybox, devices, a fifo, hardlinks, symlinks, xattrs (user.* and security.capability),
#                         setuid, owners, a sparse file, long and non-ASCII names; SHA256SUMS published; arm64 too
#   busybox/nosums        the same files without SHA256SUMS (size checked only)
#   busybox/badsum        SHA256SUMS that does not match the rootfs
#   bigbox/1              24 MiB of incompressible data (for downloads killed mid-way)
#   debian/bookworm       the debootstrap rootfs, when there is one
set -euo pipefail
P=$(realpath -m "${1:?usage: lxc.sh DIR}")
L=$P/lxc
mkdir -p "$L" "$P/run" "$P/logs"
BUILD=20261201_00:00

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

make_busybox_tree() { # DIR
  local t=$1
  rm -rf "$t"; mkdir -p "$t"/{bin,sbin,etc,dev,run,tmp,var/log,usr/lib,usr/bin,home/user,root}
  cp /bin/busybox "$t/bin/busybox"
  for a in sh ls cat echo mount; do ln -s busybox "$t/bin/$a"; done
  ln -s ../bin/busybox "$t/sbin/init"
  printf 'LXC_NAME\n' > "$t/etc/hostname"
  printf '127.0.0.1 localhost LXC_NAME\n' > "$t/etc/hosts"
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:100::/home/user:/bin/sh\n' > "$t/etc/passwd"
  printf 'root:x:0:\nusers:x:100:\n' > "$t/etc/group"
  printf 'welcome\n' > "$t/etc/motd"; touch -d '2001-02-03 04:05:06' "$t/etc/motd"
  cp "$t/bin/busybox" "$t/bin/su"; chmod 4755 "$t/bin/su"
  cp "$t/bin/busybox" "$t/usr/bin/ping"
  printf 'shared\n' > "$t/usr/lib/one"; ln "$t/usr/lib/one" "$t/usr/lib/two"; ln "$t/usr/lib/one" "$t/usr/bin/three"
  printf 'mine\n' > "$t/home/user/file"; chown -R 1000:100 "$t/home/user"; chmod 0700 "$t/home/user"
  chown 0:100 "$t/etc/motd"
  mknod "$t/dev/null" c 1 3; mknod "$t/dev/zero" c 1 5; mknod "$t/dev/console" c 5 1; chmod 0600 "$t/dev/console"
  mknod "$t/dev/loop0" b 7 0
  mkfifo "$t/run/initctl"
  chmod 1777 "$t/tmp"
  truncate -s 64M "$t/var/log/lastlog"; printf 'head' | dd of="$t/var/log/lastlog" conv=notrunc status=none
  printf 'tail' | dd of="$t/var/log/lastlog" bs=1 seek=$((40 * 1024 * 1024)) conv=notrunc status=none
  local long="$t/usr/lib/a-directory-with-a-long-name-that-needs-more-than-the-ustar-header-has-room-for/and-another-level-of-it-too-so-the-path-is-long"
  mkdir -p "$long"; printf 'deep\n' > "$long/a-file-with-a-long-name-as-well.txt"
  printf 'accent\n' > "$t/etc/café-ünïcode.txt"
  ln -s /etc/motd "$t/usr/lib/absolute-link"
  python3 - "$t" <<'EOP'
import os, sys
t = sys.argv[1]
os.setxattr(f"{t}/etc/motd", "user.depot.note", b"kept by depot")
# cap_net_raw+ep, VFS_CAP_REVISION_2
os.setxattr(f"{t}/usr/bin/ping", "security.capability",
            bytes([1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]))
os.setxattr(f"{t}/usr/lib", "user.depot.dir", b"on a directory")
EOP
  touch -d '2020-01-02 03:04:05' "$t/usr/lib" "$t/home/user"
}

pack_rootfs() { # TREE OUT.tar.xz
  tar --numeric-owner --xattrs --xattrs-include='*' --sparse -C "$1" -cf - . | xz -T2 -3 > "$2"
}

make_meta() { # OUT.tar.xz ARCH DIST
  local m; m=$(mktemp -d)
  printf 'lxc.include = LXC_TEMPLATE_CONFIG/common.conf\nlxc.arch = %s\nlxc.hook.start-host = LXC_HOOK_DIR/x\n' "$2" > "$m/config"
  printf 'lxc.include = LXC_TEMPLATE_CONFIG/userns.conf\nlxc.arch = %s\n' "$2" > "$m/config-user"
  printf '/etc/hostname\n/etc/hosts\n/etc/../../outside\n' > "$m/templates"
  printf 'You just created a %s container (test template)\n' "$3" > "$m/create-message"
  printf '1893456000\n' > "$m/expiry"
  printf './dev/console\n./dev/null\n./dev/zero\n./dev/loop0\n' > "$m/excludes-user"
  printf 'proc proc proc nodev,noexec,nosuid 0 0\n' > "$m/fstab"
  tar -C "$m" -cJf "$1" .
  rm -rf "$m"
}

publish() { # DIST RELEASE ARCH SRC-DIR [sums|nosums|badsum]
  local d=$1 r=$2 a=$3 src=$4 sums=${5:-sums}
  local rel="images/$d/$r/$a/default/$BUILD"
  mkdir -p "$L/srv/lxc/$rel"
  ln -f "$src/rootfs.tar.xz" "$L/srv/lxc/$rel/rootfs.tar.xz"
  ln -f "$src/meta.tar.xz" "$L/srv/lxc/$rel/meta.tar.xz"
  case $sums in
    sums) (cd "$L/srv/lxc/$rel" && sha256sum rootfs.tar.xz meta.tar.xz > SHA256SUMS) ;;
    badsum) printf '%064d  rootfs.tar.xz\n' 0 > "$L/srv/lxc/$rel/SHA256SUMS" ;;
    nosums) rm -f "$L/srv/lxc/$rel/SHA256SUMS" ;;
  esac
  printf '%s;%s;%s;default;%s;/%s/\n' "$d" "$r" "$a" "$BUILD" "$rel" >> "$L/srv/lxc/meta/1.0/index-system"
}

if [ ! -s "$L/busybox/rootfs.tar.xz" ] || [ ! -s "$L/busybox/meta.tar.xz" ]; then
  mkdir -p "$L/busybox"
  make_busybox_tree "$L/busybox/tree"
  pack_rootfs "$L/busybox/tree" "$L/busybox/rootfs.tar.xz"
  make_meta "$L/busybox/meta.tar.xz" x86_64 busybox
fi
if [ ! -s "$L/bigbox/rootfs.tar.xz" ]; then
  mkdir -p "$L/bigbox/tree/opt"
  head -c $((24 * 1024 * 1024)) /dev/urandom > "$L/bigbox/tree/opt/noise"
  tar --numeric-owner -C "$L/bigbox/tree" -cf - . | xz -0 -T2 > "$L/bigbox/rootfs.tar.xz"
  make_meta "$L/bigbox/meta.tar.xz" x86_64 bigbox
fi

# debootstrap once per machine: it fetches Debian's packages, which takes minutes
CACHE=/var/cache/depot-tests
DEBIAN_ROOTFS=$CACHE/debian-bookworm-minbase.tar.xz
if [ ! -s "$DEBIAN_ROOTFS" ] && command -v debootstrap > /dev/null; then
  mkdir -p "$CACHE"
  mirror=$(grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | awk '{print $2}')
  [ -n "$mirror" ] || mirror=$(grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | head -1 | awk '{print $2}')
  tmp=$CACHE/debootstrap.tmp
  rm -rf "$tmp"
  if [ -n "$mirror" ] && debootstrap --variant=minbase bookworm "$tmp" "$mirror" > "$P/logs/debootstrap.log" 2>&1; then
    rm -rf "$tmp/var/cache/apt/archives/"*.deb "$tmp/proc/"* "$tmp/sys/"* 2>/dev/null || true
    pack_rootfs "$tmp" "$DEBIAN_ROOTFS.part" && mv "$DEBIAN_ROOTFS.part" "$DEBIAN_ROOTFS"
  else
    echo "lxc.sh: debootstrap failed (see $P/logs/debootstrap.log); the Debian template is left out" >&2
  fi
  rm -rf "$tmp"
fi
[ -s "$DEBIAN_ROOTFS" ] || DEBIAN_ROOTFS=
if [ -n "$DEBIAN_ROOTFS" ]; then
  mkdir -p "$L/debian"
  ln -f "$DEBIAN_ROOTFS" "$L/debian/rootfs.tar.xz" 2>/dev/null || cp "$DEBIAN_ROOTFS" "$L/debian/rootfs.tar.xz"
  [ -s "$L/debian/meta.tar.xz" ] || make_meta "$L/debian/meta.tar.xz" x86_64 debian
fi

# the lxc-download tree
rm -rf "$L/srv"; mkdir -p "$L/srv/lxc/meta/1.0"
: > "$L/srv/lxc/meta/1.0/index-system"
publish busybox 1.36 amd64 "$L/busybox"
publish busybox 1.36 arm64 "$L/busybox"
publish busybox nosums amd64 "$L/busybox" nosums
publish busybox badsum amd64 "$L/busybox" badsum
publish bigbox 1 amd64 "$L/bigbox"
[ -z "$DEBIAN_ROOTFS" ] || publish debian bookworm amd64 "$L/debian"

# the simplestreams tree: the same busybox files, with sha256 and size in images.json
mkdir -p "$L/srv/ss/streams/v1" "$L/srv/ss/images/busybox/1.36/amd64/default/$BUILD"
ss_dir=images/busybox/1.36/amd64/default/$BUILD
ln -f "$L/busybox/rootfs.tar.xz" "$L/srv/ss/$ss_dir/rootfs.tar.xz"
ln -f "$L/busybox/meta.tar.xz" "$L/srv/ss/$ss_dir/incus.tar.xz"
python3 - "$L/srv/ss" "$ss_dir" "$BUILD" <<'EOP'
import hashlib, json, os, sys
root, d, build = sys.argv[1:]
def item(ftype, name):
    p = os.path.join(root, d, name)
    return {"ftype": ftype, "path": f"{d}/{name}", "size": os.path.getsize(p),
            "sha256": hashlib.sha256(open(p, "rb").read()).hexdigest()}
products = {"busybox:1.36:amd64:default": {
    "aliases": "busybox/1.36", "arch": "amd64", "os": "busybox", "release": "1.36", "release_title": "1.36",
    "variant": "default", "versions": {build: {"items": {
        "root.tar.xz": item("root.tar.xz", "rootfs.tar.xz"), "incus.tar.xz": item("incus.tar.xz", "incus.tar.xz")}}}}}
json.dump({"content_id": "images", "datatype": "image-downloads", "format": "products:1.0", "products": products},
          open(os.path.join(root, "streams/v1/images.json"), "w"))
json.dump({"format": "index:1.0", "index": {"images": {"datatype": "image-downloads", "format": "products:1.0",
          "path": "streams/v1/images.json", "products": list(products)}}},
          open(os.path.join(root, "streams/v1/index.json"), "w"))
EOP

# nginx: static files with Range, its access log counting the bytes it sent
PORT=$(free_port)
mkdir -p "$L/nginx/tmp"
cat > "$L/nginx/nginx.conf" <<EOC
daemon off;
worker_processes 1;
pid $P/run/nginx.pidfile;
error_log $P/logs/nginx-error.log warn;
events { worker_connections 256; }
http {
  access_log $L/nginx/access.log;
  log_format bytes '\$request_uri \$status \$body_bytes_sent';
  client_body_temp_path $L/nginx/tmp; proxy_temp_path $L/nginx/tmp; fastcgi_temp_path $L/nginx/tmp;
  uwsgi_temp_path $L/nginx/tmp; scgi_temp_path $L/nginx/tmp;
  types { application/x-xz xz; application/json json; text/plain txt; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$PORT;
    root $L/srv;
    access_log $L/nginx/bytes.log bytes;
  }
}
EOC
/usr/sbin/nginx -c "$L/nginx/nginx.conf" -p "$L/nginx" > "$P/logs/nginx.log" 2>&1 &
echo $! > "$P/run/nginx.pid"
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/lxc/meta/1.0/index-system" && break; sleep 0.1; done
curl -sf -o /dev/null "http://127.0.0.1:$PORT/lxc/meta/1.0/index-system" || { echo "nginx did not start" >&2; exit 1; }

cat >> "$P/env" <<EOE
LXC_HTTP=127.0.0.1:$PORT
LXC_DIR=$L
DEBIAN_ROOTFS=$DEBIAN_ROOTFS
EOE
echo "lxc servers up on 127.0.0.1:$PORT"
