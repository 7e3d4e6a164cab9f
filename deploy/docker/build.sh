#!/usr/bin/env bash
# Builds the image htx-sync:VERSION (and :latest) from binaries built here,
# on the local base htx-base:bookworm (deploy/docker/base.sh): no registry.
#   deploy/docker/build.sh                       # --profile dist binaries
#   BIN_DIR=target/debug deploy/docker/build.sh  # binaries already built
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BIN_DIR=${BIN_DIR:-}
if [ -z "$BIN_DIR" ]; then
  cargo build --profile dist -p htx-hub -p htx-node
  BIN_DIR=target/dist
fi
deploy/docker/base.sh
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "$BIN_DIR/htx-hub" "$BIN_DIR/htx-node" "$ctx/"
docker build -q --build-arg BASE=htx-base:bookworm -f deploy/docker/Dockerfile \
  -t "htx-sync:$VERSION" -t htx-sync:latest "$ctx"
