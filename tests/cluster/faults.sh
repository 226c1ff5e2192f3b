#!/usr/bin/env bash
# Scale-out tests on a fresh loopback cluster (run through `scripts/cluster.sh test`): exactly-once
# ingest with duplicates, kill -9 of a freshetd node mid-ingest, kill -9 of the JetStream stream
# leader mid-ingest, a NATS server restart mid-ingest, routed reads with a replica down, and an
# update that repeats an earlier one (A, B, A) not taken for a duplicate. Every
# check compares each node's exact contents with a single-node store fed the same rows
# (tests/cluster/check.py). Ends with "N passed, M failed"; exits non-zero on any failure.
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
t1; result $? "exactly-once: duplicates dropped, every node exactly its partitions, values = single node"

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
t2; result $? "kill -9 freshetd mid-ingest + restart: nothing lost, nothing applied twice, lag back to 0"

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
t3; result $? "kill -9 JetStream leader mid-ingest: publisher retries, nothing lost or doubled, lag back to 0"

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
t4; result $? "NATS server restart mid-ingest: nothing lost or doubled, lag back to 0"

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
t5; result $? "routing: batched cluster reads = single node, and with one replica down"

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
t6; result $? "a repeated update is not taken for a duplicate; a re-publish still is"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
