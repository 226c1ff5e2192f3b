#!/usr/bin/env bash
# A loopback Freshet scale-out cluster (README, "Scaling out"): a 3-node NATS JetStream cluster
# (stream FRESHET, replicas 3) and 3 freshetd nodes consuming partitions of P=8:
#   node1 0-3, node2 4-7, node3 0-7 (a replica of both)
#
#   scripts/cluster.sh start        start everything (fresh state in $FRESHET_CLUSTER_DIR)
#   scripts/cluster.sh stop         stop everything by PID
#   scripts/cluster.sh status       processes, stream state, per-node positions and lag
#   scripts/cluster.sh test         fault tests on a fresh cluster; ends with "N passed, M failed"
#   scripts/cluster.sh kill-node N | stop-node N | start-node N [FRESHETD FLAGS...]
#   scripts/cluster.sh kill-nats N | stop-nats N | start-nats N
#
# Binaries come from $FRESHET_BIN (default build/release, built if missing). Ports: NATS clients
# 14301-14303, NATS routes 16301-16303, freshetd 17101-17103, freshetd HTTP 17201-17203.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DIR=${FRESHET_CLUSTER_DIR:-/tmp/freshet-cluster}
BIN=${FRESHET_BIN:-$root/build/release}
P=8
NATS_URLS="nats://127.0.0.1:14301,nats://127.0.0.1:14302,nats://127.0.0.1:14303"
NODE_PARTS=("" "0-3" "4-7" "0-7")

log() { echo "cluster: $*" >&2; }

ensure_bin() {
  if [ ! -x "$BIN/freshetd" ] || [ ! -x "$BIN/freshet" ]; then
    log "building release binaries"
    "$root/scripts/build.sh" release
    BIN=$root/build/release
  fi
  command -v nats-server >/dev/null || { log "nats-server missing (scripts/deps.sh installs it)"; exit 1; }
}

pidfile() { echo "$DIR/pids/$1.pid"; }

alive() { local f; f=$(pidfile "$1"); [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }

# stop_pid NAME SIGNAL: signal the process in NAME's pid file and wait for it (bounded).
stop_pid() {
  local f pid; f=$(pidfile "$1")
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -"${2:-TERM}" "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  fi
  rm -f "$f"
}

start_nats() {
  local n=$1 routes=()
  for m in 1 2 3; do [ "$m" = "$n" ] || routes+=("nats://127.0.0.1:1630$m"); done
  mkdir -p "$DIR/nats$n"
  # nats-server 2.9 has no jetstream sync_interval setting: it does not fsync before acknowledging
  # (README, "Scaling out"); replicas 3 keep acknowledged messages on a quorum of processes.
  nats-server -js -sd "$DIR/nats$n" -n "n$n" -a 127.0.0.1 -p "1430$n" \
    --cluster_name freshet --cluster "nats://127.0.0.1:1630$n" \
    -routes "$(IFS=,; echo "${routes[*]}")" >>"$DIR/nats$n.log" 2>&1 &
  echo $! >"$(pidfile "nats$n")"
}

start_node() { # N [extra freshetd flags]
  local n=$1; shift
  mkdir -p "$DIR/node$n"
  "$BIN/freshetd" --data "$DIR/node$n/data" --listen "127.0.0.1:1710$n" --http "127.0.0.1:1720$n" \
    --ingest "$NATS_URLS" --stream FRESHET --partitions "${NODE_PARTS[$n]}" --partition_count $P \
    --durability sync "$@" >>"$DIR/node$n/stdout" 2>>"$DIR/node$n/server.log" &
  echo $! >"$(pidfile "node$n")"
  for _ in $(seq 1 100); do
    "$BIN/freshet" --server "127.0.0.1:1710$n" status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  log "node$n did not start; see $DIR/node$n/server.log"; return 1
}

write_map() {
  cat >"$DIR/map.json" <<JSON
{"partitions": $P,
 "nodes": [{"addr": "127.0.0.1:17101", "partitions": "0-3"},
           {"addr": "127.0.0.1:17102", "partitions": "4-7"},
           {"addr": "127.0.0.1:17103", "partitions": "0-7"}]}
JSON
}

cmd_start() {
  ensure_bin
  cmd_stop >/dev/null 2>&1 || true
  rm -rf "$DIR"; mkdir -p "$DIR/pids"
  for n in 1 2 3; do start_nats "$n"; done
  # the stream can be created once the JetStream meta group has a leader
  local ok=0
  for _ in $(seq 1 150); do
    if "$BIN/freshet" stream create --nats "$NATS_URLS" --replicas 3 >"$DIR/stream.txt" 2>/dev/null; then ok=1; break; fi
    sleep 0.2
  done
  [ $ok = 1 ] || { log "JetStream cluster not ready; see $DIR/nats*.log"; return 1; }
  for n in 1 2 3; do
    start_node "$n"
    "$BIN/freshet" --server "127.0.0.1:1710$n" apply "$root/tests/cluster/views.json" >/dev/null
  done
  write_map
  log "up: NATS $NATS_URLS; freshetd 127.0.0.1:17101 (0-3) 17102 (4-7) 17103 (0-7); map $DIR/map.json"
}

cmd_stop() {
  for n in 1 2 3; do stop_pid "node$n" TERM; done
  for n in 1 2 3; do stop_pid "nats$n" TERM; done
  log "stopped"
}

cmd_status() {
  for x in nats1 nats2 nats3 node1 node2 node3; do
    if alive "$x"; then echo "$x running pid $(cat "$(pidfile "$x")")"; else echo "$x down"; fi
  done
  "$BIN/freshet" stream info --nats "$NATS_URLS" || true
  for n in 1 2 3; do
    alive "node$n" && { echo "node$n:"; "$BIN/freshet" --server "127.0.0.1:1710$n" sources || true; }
  done
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) ensure_bin; cmd_status ;;
  kill-node) stop_pid "node$2" KILL ;;
  stop-node) stop_pid "node$2" TERM ;;
  start-node) ensure_bin; shift; start_node "$@" ;;
  kill-nats) stop_pid "nats$2" KILL ;;
  stop-nats) stop_pid "nats$2" TERM ;;
  start-nats) start_nats "$2" ;;
  test)
    ensure_bin
    # one test run at a time per machine: the cluster uses fixed ports and $DIR
    exec 9>"${DIR%/}.lock"
    flock -w 900 9 || { log "another cluster test holds ${DIR%/}.lock"; exit 1; }
    export FRESHET_BIN=$BIN FRESHET_CLUSTER_DIR=$DIR
    "$root/tests/cluster/faults.sh" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
