#!/usr/bin/env bash
# Fails if a unit's `systemd-analyze security` exposure is above 2.0, or if
# systemd does not accept the unit file. Run by .ci/run; needs systemd 250+
# (installed with apt if missing). Offline: nothing is started or enabled.
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v systemd-analyze >/dev/null; then
  apt-get update -qq && apt-get install -y -qq systemd >/dev/null
fi
status=0
for unit in htx-hub.service htx-node.service; do
  out=$(systemd-analyze security --offline=true "$unit" 2>&1) || true
  level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
  if [ -z "$level" ]; then
    echo "$unit: systemd-analyze gave no exposure level:"; echo "$out"; status=1; continue
  fi
  if awk -v l="$level" 'BEGIN { exit !(l > 2.0) }'; then
    echo "$unit: exposure $level is above 2.0:"; grep '✗' <<<"$out" || true; status=1
  else
    echo "$unit: exposure $level (at most 2.0)"
  fi
  # Unknown or misspelt settings are warnings here: refuse them too.
  if grep -q "Unknown key\|Unknown lvalue\|Failed to parse" <<<"$out"; then
    echo "$unit: systemd does not understand it:"; echo "$out" | grep "Unknown\|Failed"; status=1
  fi
done
exit $status
