#!/usr/bin/env bash
# Makes the local base image htx-base:bookworm without any registry: a
# minimal Debian bookworm root made by debootstrap (from Debian's package
# archive, through apt's ordinary channels) and imported with
# `docker import`. Cached: the image, and the root's tarball in
# ${HTX_CACHE:-$HOME/.cache/htx}, so later runs take seconds.
set -euo pipefail
IMAGE=htx-base:bookworm
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "$IMAGE is there"; exit 0
fi
CACHE=${HTX_CACHE:-$HOME/.cache/htx}
TAR=$CACHE/bookworm-minbase.tar
mkdir -p "$CACHE"
if [ ! -s "$TAR" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap; }
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=ca-certificates,adduser bookworm "$root" >/dev/null
  # apt lists and caches are not needed in the image.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -cf "$TAR.partial" . && mv "$TAR.partial" "$TAR"
  rm -rf "$root"
fi
docker import --change 'CMD ["/bin/bash"]' "$TAR" "$IMAGE" >/dev/null
echo "$IMAGE imported from $TAR"
