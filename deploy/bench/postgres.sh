#!/usr/bin/env bash
# Full recompute of progress: ours against PostgreSQL's GROUP BY ROLLUP, on
# the same national synthetic records (35 provinces x 10 districts x 10
# communes, 50 records per commune), in the same run, figures checked equal.
# Not part of CI; it installs nothing.
#
#   deploy/bench/postgres.sh            # RUNS=5 AS_OF=2025-06-30 by default
#
# When PostgreSQL (initdb, pg_ctl, postgres, psql) is installed, a throwaway
# cluster is started in a temporary directory, listening on a unix socket
# there only (no TCP address at all), and removed afterwards. Without it the
# comparison is skipped and the script says so.
# Both sides: best of RUNS after a warm-up; PostgreSQL's time is psql's
# \timing of the query (client included, 3,885 x 2 rows), ours is the
# `recompute` call (every figure of every unit built in memory).
set -euo pipefail

RUNS=${RUNS:-5}
AS_OF=${AS_OF:-2025-06-30}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

pgbin=""
if command -v pg_ctl >/dev/null && command -v initdb >/dev/null; then
  pgbin=$(dirname "$(command -v pg_ctl)")
else
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ] && pgbin=$d
  done
fi
if [ -z "$pgbin" ] || ! command -v psql >/dev/null; then
  echo "PostgreSQL is not installed (initdb, pg_ctl, psql): comparison skipped." \
       "/ Chưa cài PostgreSQL: bỏ qua phép so sánh."
  exit 0
fi

work=$(mktemp -d -t htx-pg-bench.XXXXXX)
chmod 755 "$work"
# PostgreSQL refuses to run as root: run the server as the postgres user then.
as_server() { "$@"; }
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "Running as root and there is no postgres user to run the server: comparison skipped." \
         "/ Đang chạy bằng root và không có người dùng postgres: bỏ qua."
    exit 0
  fi
  as_server() { runuser -u postgres -- "$@"; }
fi
cleanup() {
  if [ -f "$work/db/postmaster.pid" ]; then
    as_server "$pgbin/pg_ctl" -D "$work/db" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== ours: building and exporting the national synthetic set"
(cd "$root" && AS_OF=$AS_OF RUNS=$RUNS \
  cargo run --release -q -p htx-core --example progress_bench -- --export "$work/data") \
  > "$work/ours.txt"
cat "$work/ours.txt"
get() { sed -n "s/^$1=//p" "$work/ours.txt"; }
plan_start=$(get plan_start)

echo "== PostgreSQL: $("$pgbin/postgres" --version)"
mkdir -p "$work/db" "$work/sock"
[ "$(id -u)" = 0 ] && chown postgres: "$work/db" "$work/sock"
as_server "$pgbin/initdb" -D "$work/db" -U postgres --auth=trust -E UTF8 --locale=C \
  --no-sync >"$work/initdb.log" 2>&1
as_server "$pgbin/pg_ctl" -D "$work/db" -l "$work/db/server.log" -w start -o \
  "-c listen_addresses='' -c unix_socket_directories='$work/sock' -c fsync=off \
   -c shared_buffers=256MB -c work_mem=64MB" >/dev/null
sql() { psql -X -q -v ON_ERROR_STOP=1 -h "$work/sock" -U postgres -d postgres "$@"; }
(cd "$work/data" && sql -f "$here/postgres-schema.sql")
vars=(-v "as_of=$AS_OF" -v "plan_start=$plan_start")

# The figures, compared with ours: rows where everything is 0 are left out
# on both sides (PostgreSQL has no row for a unit without records).
nonzero() { awk -F, 'NR == 1 { print; next } { for (i = 3; i <= NF; i++) if ($i != 0) { print; next } }'; }
sql "${vars[@]}" --csv -f "$here/postgres-progress.sql" | nonzero > "$work/pg.csv"
nonzero < "$work/data/ours.csv" > "$work/ours.csv"
if ! diff -q "$work/ours.csv" "$work/pg.csv" >/dev/null; then
  echo "FIGURES DIFFER / SỐ LIỆU KHÁC NHAU:"
  diff "$work/ours.csv" "$work/pg.csv" | head -20
  exit 1
fi
echo "figures identical: $(($(wc -l < "$work/pg.csv") - 1)) (unit, phase) rows, $(head -1 "$work/pg.csv" | tr ',' '\n' | tail -n +3 | wc -l) columns each" \
     "/ số liệu trùng khớp"

# Warm-up, then RUNS timed runs of the same query.
{
  echo '\timing on'
  echo '\o /dev/null'
  for _ in $(seq 0 "$RUNS"); do echo "\\i $here/postgres-progress.sql"; done
} > "$work/timed.sql"
pg_ms=$(sql "${vars[@]}" -f "$work/timed.sql" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' \
  | tail -n +2 | sort -g | head -1)
ours_ms=$(get ours_ms)

echo
echo "full recompute, national synthetic ($(get records) records, $(get units) units, as of $AS_OF), best of $RUNS:"
echo "  PostgreSQL GROUP BY ROLLUP: $pg_ms ms"
echo "  ours (recompute):           $ours_ms ms"
awk -v pg="$pg_ms" -v us="$ours_ms" 'BEGIN { printf "  ratio: ours is %.1fx %s\n", (us < pg ? pg / us : us / pg), (us < pg ? "faster" : "slower") }'
