#!/usr/bin/env bash
# Scale-out tests on a fresh loopback cluster (run through `scripts/cluster.sh test`): exactly-once
# ingest with duplicates, kill -9 of a freshetd node mid-ingest, kill -9 of the JetStream stream
# leader mid-ingest, a NATS server restart mid-ingest, routed reads with a replica down, and an
# update that repeats an earlier one (A, B, A) not taken for a duplicate, a rejected message that
# stays consumed across a restart, and a stream that lost its messages (NATS storage wiped). Every
# check compares each node's exact contents with a single-node store fed the same rows
# (tests/cluster/check.py). Ends with "N passed, M failed"; exits non-zero on any failure.
# FRESHET_CLUSTER_TESTS=7 (or 1,5) runs only those tests, on the same fresh cluster.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${FRESHET_BIN:-$root/build/release}
DIR=${FRESHET_CLUSTER_DIR:-/tmp/freshet-cluster}
CL="$root/scripts/cluster.sh"
NATS="nats://127.0.0.1:14301,nats://127.0.0.1:14302,nats://127.0.0.1:14303"
SINGLE=127.0.0.1:17109
NODES=(--node 127.0.0.1:17101=0-3 --node 127.0.0.1:17102=4-7 --node 127.0.0.1:17103=0-7)
E=${FRESHET_CLUSTER_ENTITIES:-5000}
K=4
pass=0 fail=0 single_pid=""
check() { python3 "$root/tests/cluster/check.py" --bin "$BIN" "$@"; }
fr() { "$BIN/freshet" "$@"; }
now_s() { date +%s.%N; }
since() { python3 -c "import sys; print('%.2f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$1" "$(now_s)"; }
result() {
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "PASS $2"; else fail=$((fail + 1)); echo "FAIL $2"; fi
}
# run N DESCRIPTION: test tN, unless FRESHET_CLUSTER_TESTS (e.g. "7" or "1,5") leaves it out;
# t5 reads the data t1 published, the others stand alone
run() {
  case ",${FRESHET_CLUSTER_TESTS:-all}," in
  *,all,* | *",$1,"*) "t$1"; result $? "$2" ;;
  esac
}
cleanup() {
  [ -n "$single_pid" ] && kill "$single_pid" 2>/dev/null && wait "$single_pid" 2>/dev/null
  "$CL" stop >/dev/null 2>&1
}
trap cleanup EXIT

BASE=$(( $(date +%s) * 1000000 - 3600000000 ))
# gen VIEW PREFIX: writes the data set and feeds it to the single-node reference store
gen() {
  check gen --prefix "$2" --entities "$E" --updates "$K" --base "$BASE" >"$DIR/$1.jsonl"
  fr --server "$SINGLE" put --view "$1" --file "$DIR/$1.jsonl" --quiet
}
publish() { # VIEW: publishes the data set to JetStream (schema from node3)
  fr --server 127.0.0.1:17103 put --view "$1" --nats "$NATS" --file "$DIR/$1.jsonl"
}
converge() { # VIEW PREFIX: until every node holds all its rows of the data set and lag is 0
  check wait --view "$1" --prefix "$2" --entities "$E" --updates "$K" "${NODES[@]}" --timeout 120
}
# poll SECONDS CMD...: until CMD succeeds (checked every 0.2 s); fails after SECONDS
poll() {
  local end; end=$(python3 -c "import time,sys; print(time.time() + float(sys.argv[1]))" "$1"); shift
  until "$@"; do
    python3 -c "import time,sys; sys.exit(time.time() > float(sys.argv[1]))" "$end" || return 1
    sleep 0.2
  done
}
pos_of() { fr --server "$1" sources | awk -v p="$2" '$1 ~ /^nats:/ && $2 == p {print $3}'; }
lag_of() { fr --server "$1" sources | awk -v p="$2" '$1 ~ /^nats:/ && $2 == p {print $4}'; }
pos_is() { [ "$(pos_of "$1" "$2")" = "$3" ]; }
last_seq() { fr stream info --nats "$NATS" | sed -n 's/.* last_seq \([0-9]*\) .*/\1/p'; }
part_of() { python3 -c "import sys
h = 2166136261
for x in sys.argv[1].encode(): h = ((h ^ x) * 16777619) & 0xffffffff
print(h % 8)" "$1"; }
clock_past() { python3 -c "import time,sys; sys.exit(time.time() * 1e6 <= float(sys.argv[1]))" "$1"; }
metric() { python3 -c "import urllib.request,sys; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())" "http://$1/metrics"; }
verify() { check verify --view "$1" --prefix "$2" --entities "$E" --updates "$K" --base "$BASE" \
             --single "$SINGLE" "${NODES[@]}"; }

"$CL" start || { echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$DIR/single"
"$BIN/freshetd" --data "$DIR/single/data" --listen "$SINGLE" 2>"$DIR/single/server.log" >/dev/null &
single_pid=$!
for _ in $(seq 1 100); do fr --server "$SINGLE" status >/dev/null 2>&1 && break; sleep 0.1; done
fr --server "$SINGLE" apply "$root/tests/cluster/views.json" >/dev/null
echo "cluster: $E accounts x $K updates per test, P=8, nodes 0-3 / 4-7 / 0-7, stream replicas 3"

# 1. exactly-once: publish, publish everything again (Msg-Id duplicates), compare exact contents
t1() {
  gen t1 a || return 1
  local t0 out; t0=$(now_s)
  out=$(publish t1) || { echo "$out"; return 1; }
  echo "  $out"
  echo "$out" | grep -q "rows published: $((E * K))," || return 1
  out=$(publish t1) || { echo "$out"; return 1; }
  echo "  again: $out"
  echo "$out" | grep -q "duplicates (by Nats-Msg-Id): $((E * K))," || return 1
  converge t1 a && echo "  figure: publish -> visible on every node in $(since "$t0") s" && verify t1 a
}
run 1 "exactly-once: duplicates dropped, every node exactly its partitions, values = single node"

# 2. kill -9 a freshetd node mid-ingest, restart it
t2() {
  gen t2 b || return 1
  publish t2 >"$DIR/t2.pub" 2>&1 & local pub=$!
  sleep 0.7
  "$CL" kill-node 2; echo "  killed node2 (kill -9) mid-ingest"
  sleep 1
  "$CL" start-node 2 || return 1
  local t0; t0=$(now_s)
  wait $pub || { cat "$DIR/t2.pub"; return 1; }
  converge t2 b || return 1
  echo "  figure: node kill -9 -> restarted node caught up (lag 0) in $(since "$t0") s after restart"
  grep -c "ingest_subscribed" "$DIR/node2/server.log" | sed 's/^/  node2 subscriptions so far: /'
  verify t2 b
}
run 2 "kill -9 freshetd mid-ingest + restart: nothing lost, nothing applied twice, lag back to 0"

# 3. kill -9 the stream leader mid-ingest
t3() {
  gen t3 c || return 1
  local leader; leader=$(fr stream info --nats "$NATS" | sed -n 's/.* leader n\([0-9]\).*/\1/p')
  [ -n "$leader" ] || { echo "  no stream leader"; return 1; }
  publish t3 >"$DIR/t3.pub" 2>&1 & local pub=$!
  sleep 0.5
  local t0; t0=$(now_s)
  "$CL" kill-nats "$leader"; echo "  killed stream leader n$leader (kill -9) mid-ingest"
  sleep 2
  "$CL" start-nats "$leader"
  wait $pub || { cat "$DIR/t3.pub"; return 1; }
  echo "  $(cat "$DIR/t3.pub")"
  converge t3 c || return 1
  echo "  figure: leader kill -9 -> all rows visible, lag 0 in $(since "$t0") s (leader down 2 s)"
  fr stream info --nats "$NATS" | sed 's/^/  /'
  verify t3 c
}
run 3 "kill -9 JetStream leader mid-ingest: publisher retries, nothing lost or doubled, lag back to 0"

# 4. restart a NATS server (clean stop) mid-ingest
t4() {
  gen t4 d || return 1
  publish t4 >"$DIR/t4.pub" 2>&1 & local pub=$!
  sleep 0.5
  local t0; t0=$(now_s)
  "$CL" stop-nats 1; echo "  stopped n1 mid-ingest"
  sleep 1
  "$CL" start-nats 1
  wait $pub || { cat "$DIR/t4.pub"; return 1; }
  converge t4 d || return 1
  echo "  figure: NATS restart -> all rows visible, lag 0 in $(since "$t0") s (server down 1 s)"
  verify t4 d
}
run 4 "NATS server restart mid-ingest: nothing lost or doubled, lag back to 0"

# 5. routed reads over the partition map = single node; still answered with a replica down
t5() {
  local ids; ids=$(python3 -c "print(','.join('a%d' % e for e in range(0, $E, 7)))")
  local asof=$((BASE + 10000000000))
  fr --server "$SINGLE" get --view t1 --entities "$ids" --as-of "$asof" --format json >"$DIR/t5.single" || return 1
  fr get --cluster "$DIR/map.json" --view t1 --entities "$ids" --as-of "$asof" --format json >"$DIR/t5.cluster" || return 1
  cmp -s "$DIR/t5.single" "$DIR/t5.cluster" || { echo "  cluster read differs"; diff "$DIR/t5.single" "$DIR/t5.cluster" | head -5; return 1; }
  echo "  $(wc -l <"$DIR/t5.cluster") entities read through the map (node1 0-3, node2 4-7) = single node"
  "$CL" kill-node 1; echo "  killed node1 (partitions 0-3; node3 holds replicas)"
  fr get --cluster "$DIR/map.json" --view t1 --entities "$ids" --as-of "$asof" --format json >"$DIR/t5.failover" || return 1
  cmp -s "$DIR/t5.single" "$DIR/t5.failover" || { echo "  failover read differs"; return 1; }
  echo "  same answers with node1 down (failover to node3)"
  "$CL" start-node 1
}
run 5 "routing: batched cluster reads = single node, and with one replica down"

# 6. a later update that repeats an earlier one (A, B, A for one key and event time) is stored
# like any update, while the same rows published again are still dropped as duplicates
t6() {
  local f="$DIR/t6.jsonl" out
  for k in 1 2 1; do
    echo "{\"acct_id\": \"aba0\", \"event_timestamp\": $BASE, \"k\": $k, \"tag\": \"v$k\", \"score\": $k}"
  done >"$f"
  fr --server "$SINGLE" put --view t5 --file "$f" --quiet || return 1
  out=$(fr --server 127.0.0.1:17103 put --view t5 --nats "$NATS" --file "$f") || { echo "$out"; return 1; }
  echo "  $out"
  echo "$out" | grep -q "rows published: 3," || return 1
  out=$(fr --server 127.0.0.1:17103 put --view t5 --nats "$NATS" --file "$f") || { echo "$out"; return 1; }
  echo "  again: $out"
  echo "$out" | grep -q "duplicates (by Nats-Msg-Id): 3," || return 1
  check wait --view t5 --prefix aba --entities 1 --updates 3 "${NODES[@]}" --timeout 60 || return 1
  fr --server "$SINGLE" get --view t5 --entities aba0 --format json >"$DIR/t6.single" || return 1
  fr --server 127.0.0.1:17103 get --view t5 --entities aba0 --format json >"$DIR/t6.node" || return 1
  cmp -s "$DIR/t6.single" "$DIR/t6.node" || { diff "$DIR/t6.single" "$DIR/t6.node"; return 1; }
  grep -q '"t5:k": {"value": 1,' "$DIR/t6.node" || { cat "$DIR/t6.node"; return 1; }
  echo "  A, B, A stored as three updates (value A), as a direct put stores them"
}
run 6 "a repeated update is not taken for a duplicate; a re-publish still is"

# 7. a message rejected as poison (an event beyond --max_future_skew) is consumed for good: the
# position covers it although no valid row follows it, and after a restart that comes when its
# event time would be acceptable it is still not applied (each replica decides once, at delivery)
t7() {
  local n3=127.0.0.1:17103 f="$DIR/t7.jsonl" part mrk seq ts out
  part=$(part_of fut0)
  mrk=$(for i in $(seq 0 99); do [ "$(part_of "mrk$i")" = "$part" ] && echo "mrk$i" && break; done)
  "$CL" stop-node 3 && "$CL" start-node 3 --max_future_skew 2s || return 1
  ts=$(( $(date +%s%N) / 1000 + 6000000 ))
  echo "{\"acct_id\": \"fut0\", \"event_timestamp\": $ts, \"k\": 7, \"tag\": \"future\", \"score\": 7}" >"$f"
  out=$(fr --server "$n3" put --view t5 --nats "$NATS" --file "$f") || { echo "$out"; return 1; }
  seq=$(last_seq)
  poll 20 grep -q "event=ingest_row_rejected partition=$part seq=$seq " "$DIR/node3/server.log" ||
    { echo "  seq $seq was not rejected"; return 1; }
  poll 20 pos_is "$n3" "$part" "$seq" ||
    { echo "  node3 partition $part position $(pos_of "$n3" "$part"), not the rejected seq $seq"; return 1; }
  echo "  rejected (event 6 s ahead, skew 2 s) at seq $seq; node3 partition $part position $seq"
  poll 30 clock_past "$ts" || return 1 # its event time is now acceptable: a redelivery would apply
  "$CL" stop-node 3 && "$CL" start-node 3 --max_future_skew 2s || return 1
  echo "{\"acct_id\": \"$mrk\", \"event_timestamp\": $BASE, \"k\": 1, \"tag\": \"m\", \"score\": 1}" >"$f"
  out=$(fr --server "$n3" put --view t5 --nats "$NATS" --file "$f") || { echo "$out"; return 1; }
  seq=$(last_seq) # a later message of the same partition: once it applied, fut0's turn has passed
  poll 30 pos_is "$n3" "$part" "$seq" || { echo "  node3 did not apply seq $seq"; return 1; }
  out=$(fr --server "$n3" get --view t5 --entities "$mrk,fut0" --format json) || return 1
  echo "$out" | grep "\"$mrk\"" | grep -q '"status": "PRESENT"' || { echo "$out"; return 1; }
  echo "$out" | grep '"fut0"' | grep -q '"status": "NOT_FOUND"' ||
    { echo "  the rejected row was applied after the restart:"; echo "$out"; return 1; }
  echo "  restarted after its event time: $mrk (seq $seq) applied, the rejected row still NOT_FOUND"
}
run 7 "a rejected message stays consumed: its position is stored, a restart does not apply it"

# 8. NATS loses its storage (all three servers wiped, stream recreated): node3's positions are
# above the new stream's last sequence. It must say so (error log, metric, lag unknown) instead of
# waiting silently at position + 1 with lag 0, and replay the new stream after a reset.
t8() {
  local n3=127.0.0.1:17103 f="$DIR/t8.jsonl" out p ok
  for n in 1 2 3; do "$CL" stop-nats "$n"; done
  rm -rf "$DIR/nats1" "$DIR/nats2" "$DIR/nats3"
  for n in 1 2 3; do "$CL" start-nats "$n"; done
  poll 60 fr stream create --nats "$NATS" --replicas 3 >/dev/null 2>&1 || { echo "  no stream"; return 1; }
  echo "  NATS storage wiped, stream recreated: $(fr stream info --nats "$NATS")"
  for e in 0 1 2; do
    echo "{\"acct_id\": \"new$e\", \"event_timestamp\": $BASE, \"k\": $e, \"tag\": \"n\", \"score\": 1}"
  done >"$f"
  out=$(fr --server "$n3" put --view t5 --nats "$NATS" --file "$f") || { echo "$out"; return 1; }
  ahead_logged() { [ "$(grep -c "event=ingest_position_ahead stream=FRESHET" "$DIR/node3/server.log")" -ge 8 ]; }
  poll 30 ahead_logged || { echo "  node3 did not report its positions above the stream"; return 1; }
  grep -m1 "event=ingest_position_ahead" "$DIR/node3/server.log" | sed 's/^/  /'
  out=$(metric 127.0.0.1:17203) || return 1
  for p in 0 1 2 3 4 5 6 7; do
    echo "$out" | grep -q "^freshet_ingest_position_ahead{source=\"nats:FRESHET\",partition=\"$p\"} 1$" ||
      { echo "  metric position_ahead of partition $p is not 1"; return 1; }
    [ "$(lag_of "$n3" "$p")" = "?" ] || { echo "  partition $p lag $(lag_of "$n3" "$p"), not unknown"; return 1; }
  done
  echo "  freshet_ingest_position_ahead 1 and lag ? on all 8 partitions"
  "$CL" stop-node 3 && "$CL" start-node 3 --ingest_reset_ahead 1 || return 1
  replayed() {
    fr --server "$n3" get --view t5 --entities new0,new1,new2 --format json | grep -c '"status": "PRESENT"' |
      grep -qx 3 || return 1
    for p in 0 1 2 3 4 5 6 7; do [ "$(lag_of "$n3" "$p")" = "0" ] || return 1; done
  }
  poll 60 replayed || { echo "  node3 did not replay the new stream after the reset"; fr --server "$n3" sources; return 1; }
  ok=$(grep -c "event=ingest_position_reset" "$DIR/node3/server.log")
  echo "  restarted with --ingest_reset_ahead 1: $ok positions reset, the new stream's rows applied, lag 0"
}
run 8 "stream recreated below the stored positions: reported (log, metric, lag ?), replayed after a reset"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
