#!/usr/bin/env bash
# A/B ingest throughput of two pathstats builds, alternating on one machine.
# usage: scripts/ab-ingest.sh OLD_REV [ROUNDS] [extra serve flags…]
# Builds OLD_REV and the working tree, then per round starts each server on a
# fresh data dir and runs `loadgen ingest` against it for 15 s.
set -euo pipefail
old_rev=${1:?usage: $0 OLD_REV [ROUNDS] [serve flags…]}
rounds=${2:-3}
shift $(( $# >= 2 ? 2 : 1 ))
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add -q "$work/old" "$old_rev"
(cd "$work/old" && go build -o "$work/pathstats-old" ./cmd/pathstats)
(cd "$root" && go build -o "$work/pathstats-new" ./cmd/pathstats)
for round in $(seq "$rounds"); do
  for v in old new; do
    d=$(mktemp -d "$work/data.XXXX")
    "$work/pathstats-$v" serve --data-dir "$d" --admin-listen 127.0.0.1:0 --listen 127.0.0.1:0 --log-level warn "$@" >"$d/log" 2>&1 &
    pid=$!
    for _ in $(seq 300); do [ -f "$d/serve.json" ] && break; sleep 0.1; done
    out=$("$work/pathstats-$v" loadgen ingest --data-dir "$d" --concurrency 8 --duration 15s --events 1000 --paths 10000 2>&1 | tail -1)
    echo "round $round $v: $out"
    kill "$pid"; wait "$pid" || true
  done
done
