#!/usr/bin/env bash
# Scale-out figures for bench/RESULTS.md ("Scale-out (NATS JetStream)"): publish rate into R1 and
# R3 streams, apply rate per node (catching up a backlog, and while publishing), ingest-to-visible
# p50/p99 through the partition map, and recovery times after each fault (tests/cluster/faults.sh).
# Uses the loopback cluster of scripts/cluster.sh and a standalone nats-server for R1.
# Output: lines of JSON on stdout, a copy in bench/results/scaleout.jsonl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROWS=${ROWS:-200000}
./scripts/build.sh release -DFRESHET_BENCH=ON
BIN=$root/build/release
B=$BIN/bench/bench_scaleout
DIR=${FRESHET_CLUSTER_DIR:-/tmp/freshet-cluster}
out=$root/bench/results/scaleout.jsonl
mkdir -p "$root/bench/results"; : >"$out"
emit() { echo "$1" | tee -a "$out"; }
now_s() { date +%s.%N; }

# the loopback cluster's ports and directory are shared with scripts/cluster.sh test: take its lock
# (released before the fault tests, which take it themselves)
DIRLOCK="${DIR%/}.lock"
exec 9>"$DIRLOCK"
flock -w 900 9

# R1: one nats-server, stream with one replica
r1dir=$(mktemp -d)
nats-server -js -sd "$r1dir" -a 127.0.0.1 -p 14309 >"$r1dir/log" 2>&1 & r1pid=$!
trap 'kill $r1pid 2>/dev/null; "$root/scripts/cluster.sh" stop >/dev/null 2>&1; rm -rf "$r1dir"' EXIT
sleep 0.5
emit "$($B publish --nats nats://127.0.0.1:14309 --replicas 1 --rows "$ROWS" | sed 's/"replicas": 1/"replicas": 1, "stream": "R1 (one nats-server)"/')"
kill $r1pid; wait $r1pid 2>/dev/null || true

# R3: the 3-node cluster; nodes consume while the rows are published
FRESHET_BIN=$BIN ./scripts/cluster.sh start
NATS="nats://127.0.0.1:14301,nats://127.0.0.1:14302,nats://127.0.0.1:14303"
read -r n1 n2 n3 < <(python3 - "$ROWS" <<'PY'
import sys
def f(b):
    h = 2166136261
    for x in b: h = ((h ^ x) * 16777619) & 0xffffffff
    return h
n = int(sys.argv[1]); c = [0] * 8
for i in range(n): c[f(b"p%d" % i) % 8] += 1
print(sum(c[0:4]), sum(c[4:8]), n)
PY
)
versions() { "$BIN/freshet" --server "$1" status | awk -v v=t5 '$1 == v {print $2}'; }
t0=$(now_s)
emit "$($B publish --nats "$NATS" --replicas 3 --rows "$ROWS")"
for spec in "127.0.0.1:17101 $n1" "127.0.0.1:17102 $n2" "127.0.0.1:17103 $n3"; do
  set -- $spec
  until [ "$(versions "$1")" = "$2" ]; do sleep 0.05; done
  secs=$(python3 -c "print('%.3f' % ($(now_s) - $t0))")
  emit "{\"bench\": \"apply_while_publishing\", \"node\": \"$1\", \"rows\": $2, \"seconds_from_first_publish\": $secs, \"rows_per_s\": $(python3 -c "print('%.0f' % ($2 / $secs))")}"
done
# catch-up: node3 (all 8 partitions) starts empty with the whole stream as backlog
./scripts/cluster.sh stop-node 3
rm -rf "$DIR/node3/data"
FRESHET_BIN=$BIN ./scripts/cluster.sh start-node 3
t0=$(now_s)
"$BIN/freshet" --server 127.0.0.1:17103 apply tests/cluster/views.json >/dev/null
until [ "$(versions 127.0.0.1:17103)" = "$n3" ]; do sleep 0.05; done
secs=$(python3 -c "print('%.3f' % ($(now_s) - $t0))")
emit "{\"bench\": \"apply_catch_up\", \"node\": \"127.0.0.1:17103\", \"partitions\": 8, \"rows\": $n3, \"seconds\": $secs, \"rows_per_s\": $(python3 -c "print('%.0f' % ($n3 / $secs))"), \"durability\": \"sync\"}"
emit "$($B latency --nats "$NATS" --map "$DIR/map.json" --samples "${SAMPLES:-1000}")"
./scripts/cluster.sh stop >/dev/null
exec 9>&-

# recovery after each fault: the figure lines of the fault tests
status=0
FRESHET_BIN=$BIN FRESHET_CLUSTER_ENTITIES=${ENTITIES:-5000} ./scripts/cluster.sh test \
  >"$root/bench/results/scaleout_faults.txt" 2>&1 || status=1
grep -E "figure:|passed" "$root/bench/results/scaleout_faults.txt" | sed 's/^ *figure: //' |
  while read -r line; do emit "{\"bench\": \"recovery\", \"what\": \"$line\"}"; done
[ $status -eq 0 ] || echo "run_scaleout: fault tests failed, see bench/results/scaleout_faults.txt" >&2
exit $status
