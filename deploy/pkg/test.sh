#!/usr/bin/env bash
# Installs the two .deb packages in a clean Debian container (the local
# debootstrap base, deploy/docker/base.sh) and follows the runbook there as
# the documented user: `htx-hub init` and `enroll`, `htx-node init`, then
# checks the user, the directories' owners and modes, the units and the
# example configs.
#   BIN_DIR=target/debug deploy/pkg/test.sh   # package binaries already built
set -euo pipefail
cd "$(dirname "$0")/../.."
# Uncompressed: these packages only travel to the container next door.
debs=$(DEB_COMPRESS=none deploy/pkg/build-deb.sh)
deploy/docker/base.sh >/dev/null
name=htx-pkg-test-$$
trap 'docker rm -f $name >/dev/null 2>&1 || true' EXIT
docker run -d --name $name htx-base:bookworm sleep 600 >/dev/null
for d in $debs; do docker cp "$d" $name:/tmp/; done
docker exec -i $name bash -euo pipefail <<'IN'
dpkg -i /tmp/htx-hub_*.deb /tmp/htx-node_*.deb >/dev/null
id htx
test "$(stat -c '%U %a' /var/lib/htx-hub)" = "htx 700"
test "$(stat -c '%U %a' /var/lib/htx-node)" = "htx 700"
test -f /lib/systemd/system/htx-hub.service && test -f /lib/systemd/system/htx-node.service
test -f /usr/share/doc/htx-hub/hub.example.toml && test -f /usr/share/doc/htx-node/node.example.toml
su -s /bin/sh htx -c 'htx-hub init /var/lib/htx-hub --public-url https://hub.example:7443 --server-name hub.example'
su -s /bin/sh htx -c 'htx-hub enroll /var/lib/htx-hub --unit 356 --name nd-356 --out /var/lib/htx-hub/nd-356.json'
su -s /bin/sh htx -c 'htx-node init /var/lib/htx-node --bundle /var/lib/htx-hub/nd-356.json'
su -s /bin/sh htx -c 'htx-node status /var/lib/htx-node' | grep nd-356 >/dev/null
test "$(stat -c '%U %a' /var/lib/htx-hub/ca.key)" = "htx 600"
grep -q '^# Where nodes connect' /var/lib/htx-hub/hub.toml
# Reinstalling keeps the data; removing keeps it too.
dpkg -i /tmp/htx-hub_*.deb >/dev/null && test -f /var/lib/htx-hub/store.redb
dpkg -r htx-node >/dev/null && test -f /var/lib/htx-node/store.redb
echo "packages install; init, enroll and node init work as htx"
IN
