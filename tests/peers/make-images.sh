#!/usr/bin/env bash
# Build depot's test images as OCI layouts with umoci, then push them with skopeo into the registries of
# DIR/env (written by up.sh). Layouts are reused while this script is unchanged.
#   test:1          one busybox layer; OCI manifest without mediaType (umoci writes none)
#   test:1-v2s2     the same as Docker schema 2;  test:1-zstd  the layer recompressed as zstd
#   multi:1         5 layers: base, a directory, a file, a whiteout, an opaque directory
#   big:1           4 layers of 125 MiB random data (505 MB): the benchmark and resume image
#   multiarch:1     OCI index (linux/amd64 + linux/arm64/v8);  multiarch:1-v2s2  the same as a Docker manifest list
set -euo pipefail
P=$(realpath -m "${1:?usage: make-images.sh DIR}")
. "$P/env"
W=$IMAGES
BIG_MB=${BIG_MB:-125}
stamp="$(sha256sum "$0" | cut -c1-16)-$BIG_MB"
mkdir -p "$W"
cd "$W"

build() {
  rm -rf oci-* rootfs-* d2 payload
  umoci init --layout oci-test
  umoci new --image oci-test:1
  umoci unpack --rootless --image oci-test:1 rootfs-test >/dev/null
  mkdir -p rootfs-test/rootfs/bin rootfs-test/rootfs/etc rootfs-test/rootfs/tmp
  cp /bin/busybox rootfs-test/rootfs/bin/busybox
  for a in sh ls cat echo true; do ln -s busybox "rootfs-test/rootfs/bin/$a"; done
  echo "hello from depot test:1" > rootfs-test/rootfs/etc/motd
  umoci repack --image oci-test:1 rootfs-test
  umoci config --image oci-test:1 --config.cmd /bin/sh --config.env PATH=/bin --config.label org.example.test=1 \
    --author depot-tests --history.comment "set cmd"
  umoci gc --layout oci-test

  umoci init --layout oci-multi
  umoci new --image oci-multi:1
  umoci unpack --rootless --image oci-multi:1 rootfs-multi >/dev/null
  cp -a rootfs-test/rootfs/. rootfs-multi/rootfs/
  umoci repack --image oci-multi:1 --history.created_by "base" rootfs-multi
  mkdir -p payload/a payload/b; echo one > payload/a/one; echo two > payload/b/two
  head -c 1048576 /dev/urandom > payload/rand
  umoci insert --image oci-multi:1 --history.created_by "ADD payload /data" payload /data
  echo v2 > payload/version
  umoci insert --image oci-multi:1 --history.created_by "ADD version" payload/version /etc/version
  umoci insert --image oci-multi:1 --history.created_by "RUN rm /etc/motd" --whiteout /etc/motd
  mkdir -p d2; echo only > d2/only
  umoci insert --image oci-multi:1 --history.created_by "COPY --opaque d2 /data/a" --opaque d2 /data/a
  umoci config --image oci-multi:1 --config.cmd /bin/sh --config.label stage=multi
  umoci gc --layout oci-multi

  umoci init --layout oci-big
  umoci new --image oci-big:1
  for i in 1 2 3 4; do
    head -c $((BIG_MB * 1024 * 1024)) /dev/urandom > payload/rnd$i
    umoci insert --image oci-big:1 --history.created_by "ADD rnd$i" payload/rnd$i /rnd$i
    rm payload/rnd$i
  done
  umoci config --image oci-big:1 --config.cmd /bin/true
  umoci gc --layout oci-big

  umoci init --layout oci-arch
  umoci new --image oci-arch:amd64
  umoci unpack --rootless --image oci-arch:amd64 rootfs-arch >/dev/null
  cp -a rootfs-test/rootfs/. rootfs-arch/rootfs/
  umoci repack --image oci-arch:amd64 rootfs-arch
  umoci config --image oci-arch:amd64 --architecture amd64 --os linux --config.cmd /bin/sh
  umoci new --image oci-arch:arm64
  umoci config --image oci-arch:arm64 --architecture arm64 --os linux --config.cmd /bin/sh
  echo "not really an arm64 binary" > payload/fake
  umoci insert --image oci-arch:arm64 payload/fake /bin/busybox
  umoci gc --layout oci-arch
  desc() { jq -c --arg t "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | del(.annotations)' oci-arch/index.json; }
  local a b idx d s
  a=$(desc amd64); b=$(desc arm64)
  idx=$(jq -nc --argjson a "$a" --argjson b "$b" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
    manifests: [($a + {platform: {architecture: "amd64", os: "linux"}}), ($b + {platform: {architecture: "arm64", os: "linux", variant: "v8"}})]}')
  d=$(printf '%s' "$idx" | sha256sum | cut -d' ' -f1); s=$(printf '%s' "$idx" | wc -c)
  printf '%s' "$idx" > "oci-arch/blobs/sha256/$d"
  jq --arg d "sha256:$d" --argjson s "$s" '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
    annotations: {"org.opencontainers.image.ref.name": "1"}}]' oci-arch/index.json > index.tmp && mv index.tmp oci-arch/index.json

  # zstd: recompress through a layout (pushing straight to a registry keeps the gzip blob via skopeo's cache)
  skopeo copy --quiet --dest-compress --dest-compress-format zstd oci:"$W/oci-test:1" oci:"$W/oci-zstd:1"
  rm -rf rootfs-* d2 payload
  echo "$stamp" > stamp
}

[ "$(cat stamp 2>/dev/null)" = "$stamp" ] || build

push() { skopeo copy --quiet --dest-tls-verify=false "$@"; }
push oci:"$W/oci-test:1" docker://$PLAIN/test:1
push oci:"$W/oci-test:1" docker://$PLAIN/test:latest
push --format v2s2 oci:"$W/oci-test:1" docker://$PLAIN/test:1-v2s2
push oci:"$W/oci-zstd:1" docker://$PLAIN/test:1-zstd
push oci:"$W/oci-multi:1" docker://$PLAIN/multi:1
push oci:"$W/oci-big:1" docker://$PLAIN/big:1
push --all oci:"$W/oci-arch:1" docker://$PLAIN/multiarch:1
push --all --format v2s2 oci:"$W/oci-arch:1" docker://$PLAIN/multiarch:1-v2s2
for reg in $BASIC $TOKEN $TOKEN2; do
  push --dest-creds testuser:testpass oci:"$W/oci-test:1" docker://$reg/test:1
done
push --dest-creds testuser:testpass oci:"$W/oci-test:1" docker://$TOKEN/public/test:1
skopeo copy --quiet --dest-cert-dir "$(dirname "$TLS_CA")" oci:"$W/oci-test:1" docker://$TLS/test:1
