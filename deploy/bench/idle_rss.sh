#!/usr/bin/env bash
# Idle memory of a hub and a node (BENCHMARKS.md, "Deployment"): the
# binaries in BIN_DIR (default target/release) set up as the runbook does
# (hub init, enroll one district, node init), both running, the node's
# sample records imported and synced; then, after IDLE seconds of nothing
# to do, each process's resident memory (VmRSS) and the binaries' sizes.
#   deploy/bench/idle_rss.sh                          # target/release
#   BIN_DIR=target/dist deploy/bench/idle_rss.sh      # the shipped build
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(cd "${BIN_DIR:-target/release}" && pwd)
IDLE=${IDLE:-20}
W=$(mktemp -d -t htx-idle.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
PORT=$(shuf -i 20000-40000 -n 1)
"$BIN/htx-hub" init "$W/hub" --listen "127.0.0.1:$PORT" --public-url "https://127.0.0.1:$PORT" >/dev/null
"$BIN/htx-hub" enroll "$W/hub" --unit 359 --name vu-ban --out "$W/vu-ban.json" >/dev/null
"$BIN/htx-node" init "$W/vu-ban" --bundle "$W/vu-ban.json" >/dev/null
RUST_LOG=warn "$BIN/htx-hub" run "$W/hub" & PIDS+=($!); HUB=$!
for _ in $(seq 100); do [ -f "$W/hub/admin.addr" ] && break; sleep 0.1; done
RUST_LOG=warn HTX_NODE_SYNC_INTERVAL_SECS=2 "$BIN/htx-node" run "$W/vu-ban" & PIDS+=($!); NODE=$!
for _ in $(seq 100); do [ -f "$W/vu-ban/api.addr" ] && break; sleep 0.1; done
"$BIN/htx-node" import "$W/vu-ban" deploy/sample/vu-ban.csv >/dev/null
until "$BIN/htx-hub" nodes "$W/hub" --format json | grep '"last_sync": "2' >/dev/null; do sleep 0.5; done
sleep "$IDLE"
rss() { awk '/^VmRSS/ {printf "%.1f MB", $2 / 1024}' "/proc/$1/status"; }
size() { stat -c %s "$1" | awk '{printf "%.1f MB", $1 / 1e6}'; }
echo "binaries in $BIN: htx-hub $(size "$BIN/htx-hub"), htx-node $(size "$BIN/htx-node")"
echo "idle after ${IDLE}s (one district's sample synced): htx-hub $(rss $HUB), htx-node $(rss $NODE)"
