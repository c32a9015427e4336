#!/usr/bin/env bash
# The live pipeline on one screen: a local broker, topics, a generated force,
# reference data, a worker, a replay at a visible rate and alerts as they land.
# Ctrl-C stops everything this script started (by pid) and removes its temp dir.
#
#   make demo                      # or: RATE=1000 STAFF=500 DAYS=3 bash deploy/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=$VENV/bin/python
AW=$VENV/bin/accesswatch
NOIDA=$VENV/bin/noida-db
RATE=${RATE:-500}
STAFF=${STAFF:-300}
DAYS=${DAYS:-3}
SEED=${SEED:-7}

free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
say() { printf '\033[1;36m==> %s\033[0m\n' "$*" >&2; }

DEMO=$(mktemp -d -t accesswatch-demo.XXXXXX)
KAFKA_PORT=$(free_port)
METRICS_PORT=$(free_port)
export ACCESSWATCH_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export ACCESSWATCH_METRICS_PORT=$METRICS_PORT
export ACCESSWATCH_DATA_DIR=$DEMO/faust
export ACCESSWATCH_BROKER_WAIT=30
PIDS=()
NOIDA_PID=""

cleanup() {
    trap - EXIT INT TERM
    echo >&2
    say "stopping what the demo started"
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    "$NOIDA" down --data-dir "$DEMO/noida" >/dev/null 2>&1 || true
    if [ -n "$NOIDA_PID" ]; then
        for _ in $(seq 50); do kill -0 "$NOIDA_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$NOIDA_PID" 2>/dev/null || true
    fi
    rm -rf "$DEMO"
    say "stopped; nothing left running"
}
trap cleanup EXIT
trap 'exit 0' INT TERM  # Ctrl-C is how the demo ends

say "starting a Kafka-protocol broker (noida-db) on 127.0.0.1:$KAFKA_PORT in $DEMO/noida"
# noida-db's GLIBC_2.39 warning is harmless; keep the screen for the demo.
"$NOIDA" up --only kafka --kafka-port "$KAFKA_PORT" --data-dir "$DEMO/noida" 2>&1 \
    | grep -v 'GLIBC_2.39' | grep -m1 'running' >&2 || true
NOIDA_PID=$("$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["pid"])' \
    "$DEMO/noida/noida.control.json" 2>/dev/null || true)

say "creating topics"
"$AW" topics create >&2

say "generating a force: $STAFF staff, $DAYS days, seed $SEED"
"$AW" generate --out "$DEMO/force" --staff "$STAFF" --days "$DAYS" --seed "$SEED" \
    --invalid-lines 8 >/dev/null

say "loading reference data"
"$AW" load-ref "$DEMO/force" >&2

say "training the anomaly model on the first day of that force"
"$AW" train "$DEMO/force/events.jsonl" --ref "$DEMO/force" --out "$DEMO/model.skops" \
    --days 1 --alert-rate 0.002 >&2

say "starting a worker (log: $DEMO/worker.log)"
"$AW" worker --metrics-port "$METRICS_PORT" \
    --model "$DEMO/model.skops" >"$DEMO/worker.log" 2>&1 &
PIDS+=($!)
"$PY" - "$METRICS_PORT" "${PIDS[0]}" <<'EOF'
import os, sys, time, urllib.request
port, pid = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 90
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("the worker stopped; see its log")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
            if r.status == 200:
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.2)
sys.exit("the worker did not become ready in 90 s")
EOF

say "worker ready: metrics at http://127.0.0.1:$METRICS_PORT/metrics (health: /healthz)"
say "replaying $(grep -c . "$DEMO/force/events.jsonl") events at $RATE/s; alerts appear below"
"$AW" alerts tail &
PIDS+=($!)
"$AW" replay "$DEMO/force/events.jsonl" --rate "$RATE" &
REPLAY=$!
PIDS+=($REPLAY)
wait "$REPLAY" || true
say "replay done. Metrics: curl -s http://127.0.0.1:$METRICS_PORT/metrics | grep ^accesswatch_"
say "alerts keep showing as they land; Ctrl-C stops everything"
wait
