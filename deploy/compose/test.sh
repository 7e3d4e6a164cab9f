#!/usr/bin/env bash
# Drives deploy/compose/ on real containers, with the runbook's commands
# (deploy/README.md): install a hub, enroll and set up three nodes, import,
# sync; cut one office's network, record there, reconnect, converge; kill
# the hub mid-sync, restart, converge; restore the hub from a backup taken
# before later edits, converge with nothing lost. Prints the time from
# `up` to the first completed sync. Needs docker and docker-compose.
#   BIN_DIR=target/debug deploy/compose/test.sh   # image from binaries already built
set -euo pipefail
cd "$(dirname "$0")"
P=htxtest
DC="docker-compose -p $P -f docker-compose.yml"
cleanup() { $DC down -v --remove-orphans >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
../docker/build.sh >/dev/null

hub() { $DC exec -T hub htx-hub "$@"; }
node() { local n=$1; shift; $DC exec -T "node-$n" htx-node "$@"; }
ids() { grep -o '"id": "[^"]*"' | sort -u; }
hub_ids() { hub export /var/lib/htx-hub | ids; }
node_ids() { node "$1" export /var/lib/htx-node | ids; }
all_node_ids() { { node_ids 356; node_ids 359; node_ids 366; } | sort -u; }
# Waits (at most $1 s) until the hub holds every record of every node.
converge() {
  local limit=$1 start=$SECONDS
  until [ "$(hub_ids)" = "$(all_node_ids)" ] && [ -n "$(hub_ids)" ]; do
    if (( SECONDS - start > limit )); then
      echo "FAIL: no convergence within ${limit}s"; hub nodes /var/lib/htx-hub; exit 1
    fi
    sleep 1
  done
}
step() { echo "== [$((SECONDS))s] $*"; }

step "install the hub, enroll three nodes"
t0=$SECONDS
$DC run --rm -T hub htx-hub init /var/lib/htx-hub --public-url https://hub:7443 --server-name hub >/dev/null
for u in 356 359 366; do
  $DC run --rm -T hub htx-hub enroll /var/lib/htx-hub --unit $u --name node-$u --out /var/lib/htx/node-$u.json >/dev/null
  $DC run --rm -T node-$u htx-node init /var/lib/htx-node --bundle /var/lib/htx/node-$u.json >/dev/null
done
t_up=$SECONDS
$DC up -d >/dev/null
step "import, sync"
node 356 import /var/lib/htx-node /sample/nam-dinh-city.csv
first=""
until hub nodes /var/lib/htx-hub --format json | grep '"last_sync": "2' >/dev/null; do sleep 0.5; done
first=$((SECONDS - t_up))
node 359 import /var/lib/htx-node /sample/vu-ban.csv
node 366 import /var/lib/htx-node /sample/hai-hau.csv
converge 60
echo "records at the hub: $(hub_ids | wc -l)"

step "cut Hải Hậu's network, record there, reconnect, converge"
docker network disconnect ${P}_net-366 ${P}_node-366_1
id=$(node 366 add /var/lib/htx-node cooperative --type HTX --name "HTX Hải Hậu mất mạng" --unit 14215 | tr -d '\r')
sleep 5
if hub_ids | grep "$id" >/dev/null; then echo "FAIL: the hub got a record over a cut network"; exit 1; fi
node 366 status /var/lib/htx-node | grep -i "error" || true
docker network connect ${P}_net-366 ${P}_node-366_1
converge 60
hub_ids | grep "$id" >/dev/null

step "kill the hub mid-sync, restart, converge"
node 356 add /var/lib/htx-node cooperative --type THT --name "THT trước khi máy chủ tắt" --unit 13633 >/dev/null
docker kill ${P}_hub_1 >/dev/null
$DC start hub >/dev/null
converge 90

step "back up the hub online, edit, restore the backup, converge"
hub backup /var/lib/htx-hub --out /var/lib/htx-hub/backup-test.redb
for u in 356 359; do
  node $u add /var/lib/htx-node cooperative --type HTX --name "HTX sau sao lưu $u" --unit $([ $u = 356 ] && echo 13633 || echo 13741) >/dev/null
done
converge 60
before=$(hub_ids)
$DC stop hub >/dev/null
$DC run --rm -T hub htx-hub restore /var/lib/htx-hub --from /var/lib/htx-hub/backup-test.redb
$DC run --rm -T hub htx-hub export /var/lib/htx-hub | ids > /tmp/htx-restored-ids
if [ "$(cat /tmp/htx-restored-ids)" = "$before" ]; then echo "FAIL: the backup already held the later edits"; exit 1; fi
$DC start hub >/dev/null
converge 90
[ "$(hub_ids)" = "$before" ] || { echo "FAIL: records lost after restore"; exit 1; }

step "nodes, metrics"
hub nodes /var/lib/htx-hub
echo "PASS: $(hub_ids | wc -l) records at the hub; first completed sync ${first}s after up; whole run $((SECONDS - t0))s"
