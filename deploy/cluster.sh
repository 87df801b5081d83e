# Shared by deploy/elasticsearch/es.sh and deploy/opensearch/os.sh (sourced, not run): start, watch and stop a
# cluster runner's JVM. The sourcing script sets NAME, URL_VAR, STATE, NODES, HEAP, TIMEOUT, FIRST_PORT (may be
# empty), PORT_FROM, PORT_TO, DOWNLOAD, JAVA_PROPS (array), CLASSPATH, MAIN_CLASS and HERE (its Maven project);
# RUN_AS_NOBODY=1 when the server refuses to run as root (Elasticsearch 8).
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_base_port() {
    local base
    for base in $(seq "$PORT_FROM" 10 "$PORT_TO"); do
        local busy=0 i
        for i in $(seq 0 $((NODES - 1))); do
            if port_in_use $((base + i)) || port_in_use $((base + 100 + i)); then busy=1; break; fi
        done
        if [ "$busy" = 0 ]; then echo "$base"; return 0; fi
    done
    echo "$NAME: no free ports between $PORT_FROM and $((PORT_TO + 100))" >&2
    return 1
}

running() { [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; }

build() {
    local stamp="$HERE/target/.built"
    # the project, its parent (../pom.xml) and the launcher both runners compile in (../common)
    if [ -f "$stamp" ] && [ -z "$(find "$HERE/pom.xml" "$HERE/src" "$HERE/../pom.xml" "$HERE/../common" \
        -newer "$stamp" -print -quit)" ]; then
        return 0
    fi
    echo "$NAME: building the cluster runner (Maven; the first build downloads $DOWNLOAD)" >&2
    mvn -q -B -f "$HERE/pom.xml" package -DskipTests >&2
    touch "$stamp"
}

health() {
    curl -s --max-time 5 "http://127.0.0.1:$1/_cluster/health?wait_for_nodes=$NODES&timeout=2s" || true
}

up() {
    if running && [ -f "$STATE/url" ]; then
        echo "$NAME: already running (pid $(cat "$STATE/pid"))" >&2
        echo "$URL_VAR=$(cat "$STATE/url")"
        return 0
    fi
    build
    local attempt port code=1
    for attempt in 1 2 3; do
        rm -rf "$STATE"
        mkdir -p "$STATE"
        port=${FIRST_PORT:-$(free_base_port)} || return 1
        start_on "$port" && code=0 || code=$?
        # another cluster starting at the same moment took the ports this one found free: pick others
        [ "$code" = 2 ] && [ -z "$FIRST_PORT" ] && [ "$attempt" -lt 3 ] || break
        echo "$NAME: ports from $port were taken meanwhile; trying other ports" >&2
        PORT_FROM=$((port + 10))
    done
    if [ "$code" != 0 ]; then
        [ "$code" = 3 ] || { echo "$NAME: the cluster exited while starting; last lines of $STATE/cluster.log:" >&2
                             tail -n 30 "$STATE/cluster.log" >&2; }
        return 1
    fi
    echo "http://127.0.0.1:$port" >"$STATE/url"
    echo "$NAME: $NODES nodes healthy after $(($(date +%s) - STARTED))s (heap $HEAP, log $STATE/cluster.log)" >&2
    echo "$URL_VAR=http://127.0.0.1:$port"
}

# Elasticsearch 8 refuses root: a runner that sets RUN_AS_NOBODY=1 runs its JVM as `nobody` when started by root
runner_prefix() {
    RUNNER=()
    if [ "${RUN_AS_NOBODY:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then
        RUNNER=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$STATE")
    fi
}

runner_can_read() {
    runner_prefix
    [ "${#RUNNER[@]}" -gt 0 ] || return 0
    chown -R 65534:65534 "$STATE"
    "${RUNNER[@]}" test -r "$HERE/target/classes" && return 0
    echo "$NAME: the user nobody cannot read $HERE/target (Elasticsearch refuses to run as root); put the" \
         "repository where other users can read it, or run as a non-root user" >&2
    return 1
}

start_on() { # start_on PORT: 0 healthy, 2 a port was taken (BindException), 3 no health in time, 1 exited otherwise
    local port=$1
    STARTED=$(date +%s)
    runner_can_read || return 3
    setsid nohup ${RUNNER[@]+"${RUNNER[@]}"} java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC -Dlog4j2.disable.jmx=true \
        "${JAVA_PROPS[@]}" -cp "$CLASSPATH" "$MAIN_CLASS" \
        "$STATE" "$NODES" "$port" "$((port + 100))" >"$STATE/cluster.log" 2>&1 </dev/null &
    echo $! >"$STATE/pid"
    while :; do
        if ! running; then
            grep -q "BindException" "$STATE/cluster.log" && return 2
            return 1
        fi
        if health "$port" | grep -Eq "\"status\":\"(green|yellow)\".*\"number_of_nodes\":$NODES,"; then
            return 0
        fi
        if [ $(($(date +%s) - STARTED)) -ge "$TIMEOUT" ]; then
            echo "$NAME: no healthy cluster after ${TIMEOUT}s; see $STATE/cluster.log" >&2
            down
            return 3
        fi
        sleep 1
    done
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
    running || { echo "$NAME: no cluster running" >&2; return 1; }
    local request="$1-$2" waited=0
    rm -f "$STATE/control/done-$request"
    touch "$STATE/control/$request"
    while [ ! -f "$STATE/control/done-$request" ]; do
        sleep 0.2; waited=$((waited + 1))
        [ "$waited" -lt 600 ] || { echo "$NAME: no answer to $request" >&2; return 1; }
    done
}

cluster_main() {
    case "${1:-}" in
        up) up ;;
        down) down ;;
        stop-node) control stop "$2" ;;
        start-node) control start "$2" ;;
        *) echo "usage: $NAME up|down|stop-node N|start-node N" >&2; exit 2 ;;
    esac
}
