#!/usr/bin/env bash
# A local OpenSearch cluster (with the k-NN plugin) for ShopLens's tests and local trials (not for production).
#   os.sh up     build once (Maven), start NODES nodes on 127.0.0.1 in the background, wait for
#                health green/yellow; the last line printed is SHOPLENS_OS_URL=http://127.0.0.1:PORT
#   os.sh down   stop it and remove its data folder
#   os.sh stop-node N / start-node N   take node N away (or bring it back) while the cluster runs
# Settings (environment): SHOPLENS_OS_HOME (state folder, default .os in the repository),
# SHOPLENS_OS_NODES (3), SHOPLENS_OS_HEAP (heap of the one JVM that hosts every node, 1g),
# SHOPLENS_OS_PORT (first HTTP port; default: the first free one from 9650), SHOPLENS_OS_TIMEOUT (s, 240).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
STATE=${SHOPLENS_OS_HOME:-$ROOT/.os}
NODES=${SHOPLENS_OS_NODES:-3}
HEAP=${SHOPLENS_OS_HEAP:-1g}
TIMEOUT=${SHOPLENS_OS_TIMEOUT:-240}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_base_port() {
    local base
    for base in $(seq 9650 10 9850); do
        local busy=0 i
        for i in $(seq 0 $((NODES - 1))); do
            if port_in_use $((base + i)) || port_in_use $((base + 100 + i)); then busy=1; break; fi
        done
        if [ "$busy" = 0 ]; then echo "$base"; return 0; fi
    done
    echo "os.sh: no free ports between 9650 and 9950" >&2
    return 1
}

running() { [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; }

build() {
    local stamp="$HERE/target/.built"
    if [ -f "$stamp" ] && [ -z "$(find "$HERE/pom.xml" "$HERE/src" -newer "$stamp" -print -quit)" ]; then
        return 0
    fi
    echo "os.sh: building the cluster runner (Maven; the first build downloads about 60 MB)" >&2
    mvn -q -B -f "$HERE/pom.xml" package -DskipTests >&2
    touch "$stamp"
}

health() {
    curl -s --max-time 5 "http://127.0.0.1:$1/_cluster/health?wait_for_nodes=$NODES&timeout=2s" || true
}

up() {
    if running && [ -f "$STATE/url" ]; then
        echo "os.sh: already running (pid $(cat "$STATE/pid"))" >&2
        echo "SHOPLENS_OS_URL=$(cat "$STATE/url")"
        return 0
    fi
    build
    rm -rf "$STATE"
    mkdir -p "$STATE"
    local port started
    port=${SHOPLENS_OS_PORT:-$(free_base_port)}
    started=$(date +%s)
    setsid nohup java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC -Dlog4j2.disable.jmx=true \
        -Dopensearch.distribution.type=tar \
        -cp "$HERE/target/classes:$HERE/target/lib/*:$HERE/target/knn/*" shoplens.OsCluster \
        "$STATE" "$NODES" "$port" "$((port + 100))" >"$STATE/cluster.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    while :; do
        if ! running; then
            echo "os.sh: the cluster exited while starting; last lines of $STATE/cluster.log:" >&2
            tail -n 30 "$STATE/cluster.log" >&2
            return 1
        fi
        if health "$port" | grep -Eq "\"status\":\"(green|yellow)\".*\"number_of_nodes\":$NODES,"; then
            break
        fi
        if [ $(($(date +%s) - started)) -ge "$TIMEOUT" ]; then
            echo "os.sh: no healthy cluster after ${TIMEOUT}s; see $STATE/cluster.log" >&2
            down
            return 1
        fi
        sleep 1
    done
    echo "http://127.0.0.1:$port" >"$STATE/url"
    echo "os.sh: $NODES nodes healthy after $(($(date +%s) - started))s (heap $HEAP, log $STATE/cluster.log)" >&2
    echo "SHOPLENS_OS_URL=http://127.0.0.1:$port"
}

down() {
    if running; then
        local pid waited=0
        pid=$(cat "$STATE/pid")
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null && [ "$waited" -lt 60 ]; do sleep 0.5; waited=$((waited + 1)); done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf "$STATE"
}

control() { # control stop|start N: ask the running JVM to stop or restart node N, wait for its answer
    running || { echo "os.sh: no cluster running" >&2; return 1; }
    local request="$1-$2" waited=0
    rm -f "$STATE/control/done-$request"
    touch "$STATE/control/$request"
    while [ ! -f "$STATE/control/done-$request" ]; do
        sleep 0.2; waited=$((waited + 1))
        [ "$waited" -lt 600 ] || { echo "os.sh: no answer to $request" >&2; return 1; }
    done
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    stop-node) control stop "$2" ;;
    start-node) control start "$2" ;;
    *) echo "usage: os.sh up|down|stop-node N|start-node N" >&2; exit 2 ;;
esac
