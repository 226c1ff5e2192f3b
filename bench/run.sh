#!/usr/bin/env bash
# Freshet against Redis 7 on the same data, in the same run, on this machine (DESIGN.md,
# "Performance targets"). Starts its own freshetd (Release build, temp data dir, ephemeral port),
# its own redis-server instances (private port + unix socket) and bench/echo_server (the network
# floor); stops every one of them by PID at the end, also on failure. Writes
# bench/results/latest.json and prints a table.
#
#   bench/run.sh [--quick] [--reps N] [--secs S] [--entities N] [--no-build]
#
# --quick: 200k entities, 1 s per measurement, no Redis-hash ingest under AOF; about 3 minutes. Default: 1M entities, 4 s.
# Every measurement is repeated --reps times (default 3), sides interleaved; the report gives the
# median and the min..max spread.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARGS="$*"
QUICK=0
REPS=3
SECS=
N=
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --reps) REPS=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --entities) N=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [ "$QUICK" = 1 ]; then
  : "${N:=200000}" "${SECS:=1}"
  N10=20000
  HASH_INGEST_REPS=1
else
  : "${N:=1000000}" "${SECS:=4}"
  N10=100000
  HASH_INGEST_REPS=$REPS
fi
WRITERS=16  # ingest connections, each with one 1000-row batch in flight (group commit merges them)
THREADS=$(nproc)

BDIR=$ROOT/build/bench
if [ "$BUILD" = 1 ]; then
  cmake -S "$ROOT" -B "$BDIR" -DCMAKE_BUILD_TYPE=Release -DFRESHET_BENCH=ON -DFRESHET_TESTS=OFF >/dev/null
  cmake --build "$BDIR" -j"$(nproc)" --target freshetd freshet bench_serve echo_server >/dev/null
fi
FRESHETD=$BDIR/freshetd
BS=$BDIR/bench/bench_serve
ECHO=$BDIR/bench/echo_server
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found (scripts/deps.sh)" >&2; exit 1; }

TMP=$(mktemp -d /tmp/freshet-bench.XXXXXX)
RES=$TMP/results.jsonl
: >"$RES"
declare -A PIDS=()

stop_pid() { # NAME: SIGTERM the process we started, wait for it
  local pid=${PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset "PIDS[$1]"
}
cleanup() {
  local rc=$?
  for name in "${!PIDS[@]}"; do stop_pid "$name"; done
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

wait_line() { # FILE PATTERN → prints the second field of the first matching line
  for _ in $(seq 200); do
    if grep -q "^$2 " "$1" 2>/dev/null; then awk -v p="$2" '$1==p{print $2; exit}' "$1"; return 0; fi
    sleep 0.05
  done
  echo "run.sh: no '$2' line in $1" >&2
  return 1
}

start_freshetd() { # NAME DURABILITY → FADDR
  local name=$1 dur=$2
  rm -rf "$TMP/$name"
  "$FRESHETD" --data "$TMP/$name" --listen 127.0.0.1:0 --threads "$THREADS" --durability "$dur" \
    --map-size-mb 65536 --log-level warn >"$TMP/$name.out" 2>"$TMP/$name.err" &
  PIDS[$name]=$!
  FADDR=$(wait_line "$TMP/$name.out" listening)
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_redis() { # NAME ARGS... → RADDR, RSOCK
  local name=$1; shift
  local port; port=$(free_port)
  mkdir -p "$TMP/$name"
  RSOCK=$TMP/$name.sock
  redis-server --bind 127.0.0.1 --port "$port" --unixsocket "$RSOCK" --dir "$TMP/$name" \
    --daemonize no --logfile "$TMP/$name.log" "$@" &
  PIDS[$name]=$!
  for _ in $(seq 200); do
    redis-cli -s "$RSOCK" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
  done
  RADDR=127.0.0.1:$port
}

redis_mem() { redis-cli -s "$1" info memory | awk -F: '/^used_memory:/{print $2+0}'; }

record() { # WORKLOAD SIDE REP PERSISTENCE JSON
  printf '{"workload": "%s", "side": "%s", "rep": %s, "persistence": "%s", "m": %s}\n' \
    "$1" "$2" "$3" "$4" "$5" >>"$RES"
}

T0=$(date +%s)
log "entities=$N reps=$REPS secs=$SECS threads=$THREADS tmp=$TMP"

# ---- network floor: echo server, same framing, reply sizes of the freshet replies ----
"$ECHO" 127.0.0.1:0 >"$TMP/echo.out" 2>"$TMP/echo.err" &
PIDS[echo]=$!
EADDR=$(wait_line "$TMP/echo.out" listening)

# ---- ingest, sync: a fresh freshetd per rep; the last one keeps the data for the reads ----
F_SYNC_P="freshetd --durability sync (fsync per group commit)"
F_ASYNC_P="freshetd --durability async (fsync every sync_interval_ms=100)"
for rep in $(seq "$REPS"); do
  stop_pid fsync
  log "ingest_sync freshet rep $rep"
  start_freshetd fsync sync
  record ingest_sync freshet "$rep" "$F_SYNC_P" "$("$BS" load freshet "$FADDR" "$N" 1 "$WRITERS")"
done
FSYNC_ADDR=$FADDR
FBYTES=$(du -sb "$TMP/fsync" | cut -f1)
# the same data after a compacting hot backup (`freshet backup`, LMDB's MDB_CP_COMPACT copy)
"$BDIR/freshet" --server "$FSYNC_ADDR" backup "$TMP/fsync_backup" >&2
FCBYTES=$(du -sb "$TMP/fsync_backup" | cut -f1)
rm -rf "$TMP/fsync_backup"

# ---- ingest, async ----
for rep in $(seq "$REPS"); do
  log "ingest_async freshet rep $rep"
  start_freshetd fasync async
  record ingest_async freshet "$rep" "$F_ASYNC_P" "$("$BS" load freshet "$FADDR" "$N" 1 "$WRITERS")"
  stop_pid fasync
done

# ---- Redis ingest under appendfsync always / everysec ----
for mode in always everysec; do
  wl=$([ $mode = always ] && echo ingest_sync || echo ingest_async)
  start_redis "r$mode" --save '' --appendonly yes --appendfsync "$mode"
  for rep in $(seq "$REPS"); do
    log "$wl redis appendfsync $mode rep $rep"
    redis-cli -s "$RSOCK" flushall >/dev/null
    record "$wl" redis_blob "$rep" "appendonly yes, appendfsync $mode" \
      "$("$BS" load redis_blob "$RADDR" "$N" 1 "$WRITERS")"
    if [ "$QUICK" = 0 ] && [ "$rep" -le "$HASH_INGEST_REPS" ]; then
      redis-cli -s "$RSOCK" flushall >/dev/null
      record "$wl" redis_hash "$rep" "appendonly yes, appendfsync $mode" \
        "$("$BS" load redis_hash "$RADDR" "$N" 1 "$WRITERS")"
    fi
  done
  stop_pid "r$mode"
done

# ---- Redis without persistence: the read instance; also ingest_async's "no persistence" sides ----
start_redis rread --save '' --appendonly no
RREAD=$RADDR
RREAD_SOCK=$RSOCK
for rep in $(seq "$REPS"); do
  log "ingest redis no persistence rep $rep"
  redis-cli -s "$RREAD_SOCK" flushall >/dev/null
  m0=$(redis_mem "$RREAD_SOCK")
  record ingest_async redis_blob_nopersist "$rep" "save '', appendonly no" \
    "$("$BS" load redis_blob "$RREAD" "$N" 1 "$WRITERS")"
  m1=$(redis_mem "$RREAD_SOCK")
  if [ "$QUICK" = 0 ] || [ "$rep" = "$REPS" ]; then
    record ingest_async redis_hash_nopersist "$rep" "save '', appendonly no" \
      "$("$BS" load redis_hash "$RREAD" "$N" 1 "$WRITERS")"
  fi
done
m2=$(redis_mem "$RREAD_SOCK")
record footprint freshet 1 "$F_SYNC_P" "{\"bytes\": $FBYTES, \"entities\": $N, \"what\": \"du -sb of the LMDB directory, latest version only\"}"
record footprint freshet_compacted 1 "$F_SYNC_P" "{\"bytes\": $FCBYTES, \"entities\": $N, \"what\": \"du -sb of a compacting freshet backup of that directory\"}"
record footprint redis_blob 1 "save '', appendonly no" "{\"bytes\": $((m1 - m0)), \"entities\": $N, \"what\": \"used_memory delta\"}"
record footprint redis_hash 1 "save '', appendonly no" "{\"bytes\": $((m2 - m1)), \"entities\": $N, \"what\": \"used_memory delta\"}"

# ---- reads: sides interleaved within each rep ----
read_wl() { # WORKLOAD BATCH CLIENTS DIST SIDES...
  local wl=$1 batch=$2 clients=$3 dist=$4; shift 4
  for rep in $(seq "$REPS"); do
    for side in "$@"; do
      log "$wl $side rep $rep"
      local addr=$RREAD p="save '', appendonly no"
      [ "$side" = freshet ] && addr=$FSYNC_ADDR p="$F_SYNC_P"
      record "$wl" "$side" "$rep" "$p" "$("$BS" read "$side" "$addr" "$N" "$batch" "$clients" "$dist" "$SECS")"
    done
  done
}
read_wl batch100x50_1c 100 1 uniform freshet redis_blob redis_hash
read_wl batch100x50_1c_zipf 100 1 zipf freshet redis_blob redis_hash
read_wl batch100x50_4c 100 4 uniform freshet redis_blob redis_hash
read_wl single_1c 1 1 uniform freshet redis_blob redis_hash

# ---- floor: same reply sizes as freshetd's ----
BATCH_SIZES=$("$BS" probe "$FSYNC_ADDR" "$N" 100)
SMALL_SIZES=$("$BS" probe "$FSYNC_ADDR" "$N" 1)
jget() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }
for rep in $(seq "$REPS"); do
  log "floor rep $rep"
  record floor_small_1c echo "$rep" "none" \
    "$("$BS" echo "$EADDR" "$(jget "$SMALL_SIZES" request_body)" "$(jget "$SMALL_SIZES" reply_body)" 1 "$SECS")"
  record floor_batch_1c echo "$rep" "none" \
    "$("$BS" echo "$EADDR" "$(jget "$BATCH_SIZES" request_body)" "$(jget "$BATCH_SIZES" reply_body)" 1 "$SECS")"
done
record floor_small_1c sizes 1 none "$SMALL_SIZES"
record floor_batch_1c sizes 1 none "$BATCH_SIZES"

# ---- mixed: 4 readers, then the same with a writer at half its measured max rate (one paced
# stream over 4 connections, so acks do not hold it below that rate; bench_serve.c) ----
half_rate() { # WORKLOAD SIDE
  python3 - "$RES" "$1" "$2" <<'EOF'
import json, statistics, sys
v = [json.loads(l) for l in open(sys.argv[1])]
r = [x["m"]["rows_per_s"] for x in v if x["workload"] == sys.argv[2] and x["side"] == sys.argv[3]]
print(int(statistics.median(r) / 2))
EOF
}
FRATE=$(half_rate ingest_sync freshet)
RRATE=$(half_rate ingest_async redis_blob_nopersist)
for rep in $(seq "$REPS"); do
  log "mixed_4r1w freshet rep $rep (writer $FRATE rows/s)"
  record mixed_4r1w freshet "$rep" "$F_SYNC_P" "$("$BS" mixed freshet "$FSYNC_ADDR" "$N" 4 "$SECS" "$FRATE")"
  log "mixed_4r1w redis_blob rep $rep (writer $RRATE rows/s)"
  record mixed_4r1w redis_blob "$rep" "save '', appendonly no" "$("$BS" mixed redis_blob "$RREAD" "$N" 4 "$SECS" "$RRATE")"
done
stop_pid rread
stop_pid fsync

# ---- footprint with 10 versions per entity ----
log "footprint: $N10 entities x 10 versions"
start_freshetd f10 async
"$BS" load freshet "$FADDR" "$N10" 10 "$WRITERS" >/dev/null
stop_pid f10
record footprint freshet_10_versions 1 "$F_ASYNC_P" \
  "{\"bytes\": $(du -sb "$TMP/f10" | cut -f1), \"entities\": $N10, \"versions\": 10}"
stop_pid echo

# ---- report ----
mkdir -p "$ROOT/bench/results"
python3 "$ROOT/bench/report.py" "$RES" "$ROOT/bench/results/latest.json" \
  --entities "$N" --reps "$REPS" --secs "$SECS" --quick "$QUICK" --threads "$THREADS" \
  --command "bench/run.sh $ARGS"
log "done in $(( $(date +%s) - T0 )) s; bench/results/latest.json"
