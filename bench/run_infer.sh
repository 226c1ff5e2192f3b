#!/usr/bin/env bash
# freshet-infer end to end on loopback: Score latency (p50/p99) for 1 and 100 entities, with the
# server-side breakdown fetch (freshet-infer -> freshetd) vs evaluate, and a direct freshetd Get of
# the same features as the baseline. Builds Release (build/bench-infer), trains and compiles the
# fraud model (examples/fraud/train.py), starts freshetd and freshet-infer on ephemeral ports with a
# temporary data directory, loads data, runs bench_infer (JSON lines on stdout) and stops both by
# PID, also on failure.
#
#   bench/run_infer.sh [--cards N] [--iters N] [--threads N] [--busy-poll-us N] [--no-build]
#   (--busy-poll-us: both daemons' workers poll that long after each wake-up; default 0)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARDS=100000
ITERS=20000
THREADS=2
BUILD=1
BUSY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cards) CARDS=$2; shift ;;
    --iters) ITERS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --busy-poll-us) BUSY=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "run_infer.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
BDIR=$ROOT/build/bench-infer
if [ "$BUILD" = 1 ]; then
  cmake -S "$ROOT" -B "$BDIR" -DCMAKE_BUILD_TYPE=Release -DFRESHET_BENCH=ON -DFRESHET_TESTS=OFF >/dev/null
  cmake --build "$BDIR" -j"$(nproc)" --target freshetd freshet-infer freshet-compile bench_infer >/dev/null
fi
TMP=$(mktemp -d /tmp/freshet-bench-infer.XXXXXX)
FD_PID=""
INF_PID=""
cleanup() {
  for pid in $INF_PID $FD_PID; do
    if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

/usr/bin/python3 "$ROOT/examples/fraud/train.py" "$TMP/model" >&2
"$BDIR/freshet-compile" "$TMP/model/model.json" --features "$TMP/model/features.json" -o "$TMP/fraud.frm"

mkfifo "$TMP/fd_out" "$TMP/inf_out"
"$BDIR/freshetd" --data "$TMP/data" --listen 127.0.0.1:0 --durability async --threads "$THREADS" \
  --busy-poll-us "$BUSY" --log-level warn >"$TMP/fd_out" 2>"$TMP/freshetd.log" &
FD_PID=$!
read -r word FD_ADDR <"$TMP/fd_out"
[ "$word" = listening ] || { cat "$TMP/freshetd.log" >&2; exit 1; }

# load before starting freshet-infer: it checks its bindings against the registry at startup
"$BDIR/bench/bench_infer" --freshetd "$FD_ADDR" --load "$ROOT/examples/fraud/views.json" \
  --cards "$CARDS" --load-only 1

"$BDIR/freshet-infer" --model "$TMP/fraud.frm" --server "$FD_ADDR" --listen 127.0.0.1:0 \
  --threads "$THREADS" --busy-poll-us "$BUSY" --log-level warn >"$TMP/inf_out" 2>"$TMP/infer.log" &
INF_PID=$!
read -r word INF_ADDR <"$TMP/inf_out"
[ "$word" = listening ] || { cat "$TMP/infer.log" >&2; exit 1; }
echo "freshetd $FD_ADDR (pid $FD_PID), freshet-infer $INF_ADDR (pid $INF_PID), $CARDS cards, $(nproc) cores" >&2

"$BDIR/bench/bench_infer" --infer "$INF_ADDR" --freshetd "$FD_ADDR" --cards "$CARDS" --iters "$ITERS"

kill -TERM "$INF_PID"; wait "$INF_PID"; INF_PID=""
kill -TERM "$FD_PID"; wait "$FD_PID"; FD_PID=""
