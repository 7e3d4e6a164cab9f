#!/usr/bin/env bash
# Builds one .deb per binary with dpkg-deb: deploy/pkg/out/htx-hub_VERSION_ARCH.deb
# and htx-node_…deb. Each installs the binary in /usr/bin, the hardened
# systemd unit, the documented example config and the runbook under
# /usr/share/doc; its postinst creates the `htx` system user and the state
# directory /var/lib/htx-hub or /var/lib/htx-node (owner htx, mode 0700), so
# that `sudo -u htx htx-hub init /var/lib/htx-hub` works right after install.
#
#   deploy/pkg/build-deb.sh            # builds the binaries (--profile dist) first
#   BIN_DIR=target/debug deploy/pkg/build-deb.sh   # package binaries already built
set -euo pipefail
cd "$(dirname "$0")/../.."
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
ARCH=$(dpkg --print-architecture)
BIN_DIR=${BIN_DIR:-}
if [ -z "$BIN_DIR" ]; then
  cargo build --profile dist -p htx-hub -p htx-node
  BIN_DIR=target/dist
fi
OUT=deploy/pkg/out
mkdir -p "$OUT"
for name in hub node; do
  pkg=htx-$name
  root=$(mktemp -d)
  install -D -m 0755 "$BIN_DIR/$pkg" "$root/usr/bin/$pkg"
  install -D -m 0644 "deploy/systemd/$pkg.service" "$root/lib/systemd/system/$pkg.service"
  install -D -m 0644 "deploy/$name.example.toml" "$root/usr/share/doc/$pkg/$name.example.toml"
  install -D -m 0644 deploy/README.md "$root/usr/share/doc/$pkg/README.md"
  install -D -m 0644 deploy/alerts.yml "$root/usr/share/doc/$pkg/alerts.yml"
  mkdir -p "$root/DEBIAN"
  if [ $name = hub ]; then desc="HTX Sync provincial hub: merges every office's data over mutual TLS"; else desc="HTX Sync district node: records offline, syncs with the provincial hub"; fi
  cat > "$root/DEBIAN/control" <<CONTROL
Package: $pkg
Version: $VERSION
Architecture: $ARCH
Maintainer: HTX Sync <htx-sync@localhost>
Section: net
Priority: optional
Depends: adduser
Description: $desc
 Follows the progress of De an 01 (cooperatives and women's jobs).
 Runs as the htx system user from /var/lib/$pkg under systemd.
CONTROL
  cat > "$root/DEBIAN/postinst" <<POSTINST
#!/bin/sh
set -e
if [ "\$1" = configure ]; then
  getent group htx >/dev/null || addgroup --system htx
  getent passwd htx >/dev/null || adduser --system --ingroup htx --home /nonexistent --no-create-home --shell /usr/sbin/nologin --gecos "HTX Sync" htx
  install -d -o htx -g htx -m 0700 /var/lib/$pkg
  if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
exit 0
POSTINST
  cat > "$root/DEBIAN/postrm" <<POSTRM
#!/bin/sh
set -e
# The data in /var/lib/$pkg is kept, even on purge: it may be the only copy.
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
exit 0
POSTRM
  cat > "$root/DEBIAN/prerm" <<PRERM
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "\$1" = remove ]; then systemctl stop $pkg.service || true; fi
exit 0
PRERM
  chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm" "$root/DEBIAN/prerm"
  dpkg-deb -Z"${DEB_COMPRESS:-xz}" --root-owner-group --build "$root" "$OUT/${pkg}_${VERSION}_${ARCH}.deb" >/dev/null
  rm -rf "$root"
  echo "$OUT/${pkg}_${VERSION}_${ARCH}.deb"
done
