#!/usr/bin/env bash
# A one-machine Ray head on 127.0.0.1, for trying `scanner submit` / `status` / `logs` locally.
#
#   cluster/local.sh start [extra `ray start` flags]   start the head (returns once the Jobs API answers)
#   cluster/local.sh stop                              stop it (this head only)
#   cluster/local.sh status                            is it running, and where
#
# Everything binds to 127.0.0.1 (--node-ip-address and --dashboard-host); change HOST only on purpose.
# The head runs `ray start --head --block` in its own process group (setsid) and `stop` sends that
# group SIGINT: it never runs `ray stop`, which would kill every Ray process on the machine.
# Jobs run with the `python` first on PATH when the head starts: activate the environment that has
# scanner installed first.
#
# Settings (environment):
#   SCANNER_HEAD_DIR  pid file, head.log and Ray's temp dir (default ~/.scanner-head)
#   HOST              bind address (default 127.0.0.1)
#   RAY_PORT          GCS port (default 6390)       DASHBOARD_PORT  Jobs API / dashboard (default 8265)
#   NUM_CPUS, NUM_GPUS  resources to declare (default: what the machine has)
#   RAY_AUTH_MODE     "disabled" (default here: loopback only) or "token". On a machine other people
#                     can log in to, use token: clients then need RAY_AUTH_MODE=token and the token
#                     from ~/.ray/auth_token (or RAY_AUTH_TOKEN). See docs/cluster.md.
set -euo pipefail

DIR=${SCANNER_HEAD_DIR:-$HOME/.scanner-head}
HOST=${HOST:-127.0.0.1}
RAY_PORT=${RAY_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8265}
PIDFILE="$DIR/head.pid"

running() { [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

cmd=${1:-}
shift || true
case "$cmd" in
start)
    if running; then
        echo "already running (pid $(cat "$PIDFILE")); Jobs API: http://$HOST:$DASHBOARD_PORT"
        exit 0
    fi
    mkdir -p "$DIR/ray"
    export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
    export RAY_USAGE_STATS_ENABLED=0
    args=(--head --block --node-ip-address "$HOST" --dashboard-host "$HOST"
          --port "$RAY_PORT" --dashboard-port "$DASHBOARD_PORT" --include-dashboard true
          --temp-dir "$DIR/ray" --disable-usage-stats)
    [[ -n "${NUM_CPUS:-}" ]] && args+=(--num-cpus "$NUM_CPUS")
    [[ -n "${NUM_GPUS:-}" ]] && args+=(--num-gpus "$NUM_GPUS")
    # own session and process group (so `stop` signals this head only), SIGINT restored to its
    # default: a background job of a script starts with SIGINT ignored, and `ray start --block`
    # cleans up on SIGINT
    python -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])' \
        ray start "${args[@]}" "$@" >"$DIR/head.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
    for _ in $(seq 1 120); do
        if python - "$HOST" "$DASHBOARD_PORT" <<'PY' 2>/dev/null; then
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(f"http://{sys.argv[1]}:{sys.argv[2]}/api/version", timeout=2)
except urllib.error.HTTPError:
    pass  # it answered (401 with token auth): the server is up
PY
            echo "Ray head up (pid $(cat "$PIDFILE"), auth: $RAY_AUTH_MODE); log: $DIR/head.log"
            echo "export RAY_API_SERVER_ADDRESS=http://$HOST:$DASHBOARD_PORT   # for scanner submit/jobs/status"
            echo "ray address for drivers: $HOST:$RAY_PORT"
            exit 0
        fi
        if ! running; then
            echo "the head exited; see $DIR/head.log" >&2
            tail -n 20 "$DIR/head.log" >&2 || true
            rm -f "$PIDFILE"
            exit 1
        fi
        sleep 1
    done
    echo "the Jobs API did not answer within 120 s; see $DIR/head.log (stop with: $0 stop)" >&2
    exit 1
    ;;
stop)
    if ! running; then
        echo "not running"
        rm -f "$PIDFILE"
        exit 0
    fi
    pid=$(cat "$PIDFILE")
    kill -INT -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 30); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "still running after 30 s; sending SIGKILL to its process group" >&2
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    # worker processes Ray started in their own groups exit when their raylet is gone; give them a moment
    sleep 1
    rm -f "$PIDFILE"
    echo "stopped"
    ;;
status)
    if running; then
        echo "running (pid $(cat "$PIDFILE")); Jobs API: http://$HOST:$DASHBOARD_PORT; log: $DIR/head.log"
    else
        echo "not running"
        exit 1
    fi
    ;;
*)
    echo "usage: $0 start [ray start flags] | stop | status" >&2
    exit 2
    ;;
esac
