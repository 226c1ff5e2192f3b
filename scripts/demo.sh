#!/usr/bin/env bash
# The whole mission end to end: installs dependencies, builds Release, starts freshetd on a
# temporary data directory, defines views, streams features (late, out-of-order, replayed),
# reads consistent vectors with their freshness statuses and as of a past moment, then stops the
# server cleanly. Set FRESHET_DEMO_KEEP=1 to keep the data directory.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./scripts/build.sh release
BIN=build/release
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/freshet-demo.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; fi
  [ "${FRESHET_DEMO_KEEP:-0}" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "start freshetd (data in $WORK/data, sync durability, ephemeral port)"
mkfifo "$WORK/out"
$BIN/freshetd --data "$WORK/data" --listen 127.0.0.1:0 --durability sync >"$WORK/out" 2>"$WORK/freshetd.log" &
SERVER_PID=$!
read -r word ADDR <"$WORK/out"
[ "$word" = listening ] || { echo "freshetd did not start:"; cat "$WORK/freshetd.log"; exit 1; }
export FRESHET_SERVER=$ADDR
echo "freshetd pid $SERVER_PID listening on $ADDR"
FR="$BIN/freshet"

step "apply the registry (twice: the second apply is a no-op)"
$FR apply examples/fraud/views.json
$FR apply examples/fraud/views.json

step "generate a transaction feature stream (late and out-of-order events)"
$PY examples/fraud/gen_stream.py "$WORK/stream"

step "ingest card_stats with exactly-once positions (source txn-features, partition 0)"
$FR put --view card_stats --source txn-features --partition 0 --file "$WORK/stream/card_stats.jsonl"
step "a crashed stream job replays the same batch: every row is a duplicate, nothing changes"
$FR put --view card_stats --source txn-features --partition 0 --file "$WORK/stream/card_stats.jsonl"
step "ingest merchant_risk (CSV would work too: --format csv)"
$FR put --view merchant_risk --file "$WORK/stream/merchant_risk.jsonl"

step "a bad line is refused with its line number, and nothing of the file is written"
printf '{"card_id":"card_x","event_timestamp":"2026-01-01T00:00:00Z","txn_count_1h":1}\n{"card_id":"card_y","event_timestamp":"yesterday","txn_count_1h":"many"}\n' \
  | $FR put --view card_stats || echo "(exit code $? as expected)"

step "batched read: one snapshot, statuses PRESENT / EXPIRED / NOT_FOUND (and NULL for null features)"
$FR get --entities card_fresh,card_0001,card_stale,card_never_seen \
  --features card_stats:txn_count_1h,card_stats:amount_avg_1h,card_stats:country,card_stats:emb
step "the same read as JSON lines"
$FR get --entities card_fresh,card_stale --features card_stats:txn_count_1h,card_stats:emb --format json
step "EXPIRED values are withheld unless asked for (--include-expired)"
$FR get --entities card_stale --features card_stats:txn_count_1h --include-expired
step "as-of read 15 minutes in the past: what a model would have seen then"
$FR get --entities card_0001,card_0002 --features card_stats:txn_count_1h,card_stats:amount_avg_1h --as-of -15m
step "two views of different entities in one consistent request"
$FR get --entity card_id=card_0001,card_0002 --entity merchant_id=m_001,m_002 \
  --features card_stats:txn_count_1h,merchant_risk:chargeback_rate_7d

step "server status and stream positions"
$FR status
$FR sources

step "stop freshetd cleanly (SIGTERM drains queued writes and commits)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" && echo "freshetd exited 0"
SERVER_PID=""
echo
echo "demo finished"
