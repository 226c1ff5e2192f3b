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

step "training export: point-in-time join of generated labels (event mode, the default)"
$PY - "$WORK" <<'PYEOF'
import csv, random, sys, time
work = sys.argv[1]
rnd = random.Random(3)
now = int(time.time() * 1e6)
with open(work + "/labels.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["label_id", "card_id", "merchant_id", "event_timestamp", "is_fraud"])
    for i in range(2000):
        w.writerow([i, "card_%04d" % rnd.randrange(500), "m_%03d" % rnd.randrange(50),
                    now - rnd.randrange(40 * 60 * 1000000), int(rnd.random() < 0.03)])
PYEOF
$FR export pit --labels "$WORK/labels.csv" \
  --features card_stats:txn_count_1h,card_stats:amount_avg_1h,merchant_risk:chargeback_rate_7d \
  --with-status -o "$WORK/train.csv"
head -4 "$WORK/train.csv"

step "a late event: event mode takes it (and counts it as leakage), served mode shows what serving saw"
T0=$($PY -c 'import time; print(int(time.time()*1e6))')
printf '{"card_id":"card_late","event_timestamp":%s,"txn_count_1h":1}\n' $((T0 - 60000000)) | $FR put --view card_stats --quiet
LABEL=$($PY -c 'import time; print(int(time.time()*1e6))')   # the label time: after the first write
printf '{"card_id":"card_late","event_timestamp":%s,"txn_count_1h":9}\n' $((T0 - 30000000)) | $FR put --view card_stats --quiet
printf 'card_id,event_timestamp\ncard_late,%s\n' "$LABEL" > "$WORK/late_labels.csv"
echo "-- event mode (the late value 9, written after the label time):"
$FR export pit --labels "$WORK/late_labels.csv" --features card_stats:txn_count_1h --mode event
echo "-- served mode (what an online read at the label time returned: 1):"
$FR export pit --labels "$WORK/late_labels.csv" --features card_stats:txn_count_1h --mode served

step "train a small fraud model (XGBoost binary:logistic, 50 trees depth 4) and compile it"
$PY examples/fraud/train.py "$WORK/model"
$BIN/freshet-compile "$WORK/model/model.json" --features "$WORK/model/features.json" -o "$WORK/fraud.frm"
step "offline scores of a CSV (freshet predict), then XGBoost's own predictions: the same numbers"
$FR predict --model "$WORK/fraud.frm" --csv "$WORK/model/sample.csv"
cat "$WORK/model/sample_xgboost.txt"

step "start freshet-infer against freshetd (ephemeral ports; rows with more than 4 missing inputs are rejected)"
INFER_PID=""
stop_infer() {
  if [ -n "$INFER_PID" ] && kill -0 "$INFER_PID" 2>/dev/null; then kill -TERM "$INFER_PID"; wait "$INFER_PID" || true; fi
}
trap 'stop_infer; cleanup' EXIT
mkfifo "$WORK/infer_out"
$BIN/freshet-infer --model "$WORK/fraud.frm" --server "$ADDR" --listen 127.0.0.1:0 --http 127.0.0.1:0 \
  --max-missing 4 >"$WORK/infer_out" 2>"$WORK/infer.log" &
INFER_PID=$!
{ read -r word INFER_ADDR; read -r word2 INFER_HTTP; } <"$WORK/infer_out"
[ "$word" = listening ] && [ "$word2" = http ] || { echo "freshet-infer did not start:"; cat "$WORK/infer.log"; exit 1; }
echo "freshet-infer pid $INFER_PID listening on $INFER_ADDR, HTTP on $INFER_HTTP"

step "score live entities in one hop (ids in, scores out); card_stale is EXPIRED: its inputs become missing and it is still scored"
$FR score --server "$INFER_ADDR" --entity card_id=card_fresh,card_0001,card_stale,card_never_seen \
  --entity merchant_id=m_001,m_002,m_003,m_404 --feature amount=25,480,60,12
step "the same request as JSON (statuses of every input, snapshot, fetch/eval time)"
$FR score --server "$INFER_ADDR" --entity card_id=card_fresh,card_stale --entity merchant_id=m_001,m_003 \
  --feature amount=25,60 --format json
step "HTTP: POST /v1/score (JSON), then a malformed body gets a 400"
$PY - "$INFER_HTTP" <<'PYEOF'
import json, sys, urllib.error, urllib.request
url = "http://%s/v1/score" % sys.argv[1]
body = {"entities": {"card_id": ["card_fresh", "card_stale"], "merchant_id": ["m_001", "m_003"]},
        "features": {"amount": [25, 60]}}
req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
reply = json.load(urllib.request.urlopen(req))
for ent, s in zip(body["entities"]["card_id"], reply["scores"]):
    print("%-12s prob=%.6f margin=%.6f missing=%d" % (ent, s["prob"], s["margin"], s["missing"]))
print("snapshot=%d fetch_us=%d eval_us=%d" % (reply["snapshot"], reply["fetch_us"], reply["eval_us"]))
try:
    urllib.request.urlopen(urllib.request.Request(url, data=b'{"entities": [', headers={"Content-Type": "application/json"}))
except urllib.error.HTTPError as e:
    print("HTTP %d %s" % (e.code, e.read().decode().strip()))
PYEOF
step "stop freshet-infer cleanly (SIGTERM)"
kill -TERM "$INFER_PID"
wait "$INFER_PID" && echo "freshet-infer exited 0"
INFER_PID=""

step "server status and stream positions"
$FR status
$FR sources

step "stop freshetd cleanly (SIGTERM drains queued writes and commits)"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" && echo "freshetd exited 0"
SERVER_PID=""
echo
echo "demo finished"
