#!/usr/bin/env bash
# A local MLflow tracking server for tabtune's tracking and registry integration tests (and for
# users who want one): pinned `mlflow` (scripts/requirements-mlflow.txt, venv via py-env.sh),
# SQLite backend store, artifacts served by the server itself (--serve-artifacts, so runs get
# `mlflow-artifacts:` URIs and clients upload through its proxy), bound to 127.0.0.1 on a free port.
#
#   scripts/mlflow-server.sh start [DIR]   # prints the URL (http://127.0.0.1:PORT) once healthy
#   scripts/mlflow-server.sh stop  [DIR]   # stops the server started in DIR (and its workers)
#   scripts/mlflow-server.sh url   [DIR]   # prints the URL of the server running in DIR
#
# DIR (default $TABTUNE_MLFLOW_DIR or $HOME/.cache/tabtune/mlflow-server) holds mlflow.db,
# artifacts/, server.log, server.pid and server.url. Use `export MLFLOW_TRACKING_URI=$(... start)`.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cmd="${1:?usage: scripts/mlflow-server.sh start|stop|url [DIR]}"
dir="${2:-${TABTUNE_MLFLOW_DIR:-$HOME/.cache/tabtune/mlflow-server}}"

stop() {
  if [ -f "$dir/server.pid" ]; then
    pid="$(cat "$dir/server.pid")"
    # The server runs in its own session: signal the whole group (uvicorn/huey workers too).
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$dir/server.pid" "$dir/server.url"
    echo "mlflow-server: stopped (pid $pid)" >&2
  fi
}

case "$cmd" in
  stop)
    stop
    ;;
  url)
    cat "$dir/server.url"
    ;;
  start)
    mkdir -p "$dir/artifacts"
    dir="$(cd "$dir" && pwd)"
    stop
    python="$("$here/py-env.sh" mlflow)"
    bin="$(dirname "$python")"
    port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    url="http://127.0.0.1:$port"
    setsid "$bin/mlflow" server \
      --host 127.0.0.1 --port "$port" --workers 1 \
      --backend-store-uri "sqlite:///$dir/mlflow.db" \
      --serve-artifacts --artifacts-destination "$dir/artifacts" \
      >"$dir/server.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$dir/server.pid"
    # Healthy means /health answers and the REST API serves a request.
    for _ in $(seq 1 300); do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "mlflow-server: the server exited while starting; its log ($dir/server.log):" >&2
        tail -n 30 "$dir/server.log" >&2
        rm -f "$dir/server.pid"
        exit 1
      fi
      if "$python" - "$url" <<'PY' 2>/dev/null
import sys, urllib.request
base = sys.argv[1]
assert urllib.request.urlopen(base + "/health", timeout=2).read().strip() == b"OK"
urllib.request.urlopen(base + "/api/2.0/mlflow/experiments/search?max_results=1", timeout=5).read()
PY
      then
        echo "$url" >"$dir/server.url"
        echo "mlflow-server: MLflow $("$bin/mlflow" --version 2>/dev/null | awk '{print $NF}') at $url (pid $pid, data in $dir)" >&2
        echo "$url"
        exit 0
      fi
      sleep 0.5
    done
    echo "mlflow-server: not healthy after 150 s; its log ($dir/server.log):" >&2
    tail -n 30 "$dir/server.log" >&2
    stop
    exit 1
    ;;
  *)
    echo "usage: scripts/mlflow-server.sh start|stop|url [DIR]" >&2
    exit 2
    ;;
esac
