#!/usr/bin/env bash
# The HTX Sync demo: a provincial hub and three district nodes of Nam Định
# (real GSO unit codes), sample records, one node offline for a while then
# back, and the merged result at the hub. Needs nothing but cargo.
#
#   bash deploy/demo.sh            # work files in a temporary directory
#   DEMO_DIR=/tmp/htx bash deploy/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building htx-hub and htx-node (release)"
cargo build --release --quiet -p htx-hub -p htx-node
BIN="$PWD/target/release"
W="${DEMO_DIR:-$(mktemp -d -t htx-demo.XXXXXX)}"
rm -rf "$W/hub" "$W/nodes" && mkdir -p "$W/nodes"

# A free loopback port for the hub.
PORT=""
for p in $(shuf -i 20000-40000 -n 50); do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then PORT=$p; break; fi
done
[ -n "$PORT" ] || { echo "no free port found" >&2; exit 1; }

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

say "Hub: init (CA and certificate) and enrolment of three district nodes"
"$BIN/htx-hub" init "$W/hub" --listen "127.0.0.1:$PORT" --public-url "https://127.0.0.1:$PORT"
declare -A UNIT=([nam-dinh-city]=356 [vu-ban]=359 [hai-hau]=366)
for n in nam-dinh-city vu-ban hai-hau; do
  "$BIN/htx-hub" enroll "$W/hub" --unit "${UNIT[$n]}" --name "$n" --out "$W/nodes/$n.bundle.json"
  "$BIN/htx-node" init "$W/nodes/$n" --bundle "$W/nodes/$n.bundle.json"
done

say "An officer's account for Vụ Bản's web app (the password comes on stdin, never on the command line)"
DEMO_PASSWORD="demo-mat-khau-01"
echo "$DEMO_PASSWORD" | "$BIN/htx-node" user add "$W/nodes/vu-ban" lan --role editor

say "Hub and two nodes start; Hải Hậu (366) stays offline"
RUST_LOG=warn "$BIN/htx-hub" run "$W/hub" & PIDS+=($!)
for _ in $(seq 100); do [ -f "$W/hub/admin.addr" ] && break; sleep 0.1; done
for n in nam-dinh-city vu-ban; do
  RUST_LOG=warn HTX_NODE_SYNC_INTERVAL_SECS=2 "$BIN/htx-node" run "$W/nodes/$n" & PIDS+=($!)
done
for f in "$W/hub/admin.addr" "$W/nodes/nam-dinh-city/api.addr" "$W/nodes/vu-ban/api.addr"; do
  for _ in $(seq 100); do [ -f "$f" ] && break; sleep 0.1; done
done

say "Officers import their records (the running nodes take them through their local API)"
for n in nam-dinh-city vu-ban hai-hau; do
  printf '%-14s ' "$n:"; "$BIN/htx-node" import "$W/nodes/$n" "deploy/sample/$n.csv"
done
printf '%-14s ' "hai-hau:"
"$BIN/htx-node" add "$W/nodes/hai-hau" activity --type communication --held-on 2025-03-08 \
  --unit 14215 --title "Ngày Quốc tế Phụ nữ: tuyên truyền Đề án 01" --participants 200 --women 180 >/dev/null && echo "recorded one more activity offline"

say "Hải Hậu has no link: its sync fails cleanly, its data stays local, and it sees its own progress offline"
HTX_NODE_HUB_URL="https://127.0.0.1:1" "$BIN/htx-node" sync "$W/nodes/hai-hau" --once || true
"$BIN/htx-node" progress "$W/nodes/hai-hau" --as-of 2025-12-31 | sed -n '1,33p'

say "The online nodes sync; the hub shows who is up to date"
"$BIN/htx-node" sync "$W/nodes/nam-dinh-city" --once
"$BIN/htx-node" sync "$W/nodes/vu-ban" --once
"$BIN/htx-hub" nodes "$W/hub"

say "Hải Hậu's link comes back"
"$BIN/htx-node" sync "$W/nodes/hai-hau" --once
"$BIN/htx-node" status "$W/nodes/hai-hau"

say "Merged at the hub: records per commune and kind"
"$BIN/htx-hub" nodes "$W/hub"
echo
"$BIN/htx-hub" export "$W/hub" --format table

say "Progress of the province against the plan (phase 1 closed on 2025-12-31)"
"$BIN/htx-hub" progress "$W/hub" --as-of 2025-12-31
echo
echo "Also: $BIN/htx-hub progress $W/hub --hierarchy 2025 --format csv"
echo "Work files: $W"

say "The officers' web app of Vụ Bản"
echo "Open http://$(cat "$W/nodes/vu-ban/web.addr") and sign in as lan / $DEMO_PASSWORD"
if [ -t 0 ]; then
  echo "(the hub and nodes keep running; press Ctrl-C to stop)"
  wait
fi
