#!/usr/bin/env bash
# A local Elasticsearch cluster for ShopLens's tests and local trials (not for production).
#   es.sh up     build once (Maven), start NODES nodes on 127.0.0.1 in the background, wait for
#                health green/yellow; the last line printed is SHOPLENS_ES_URL=http://127.0.0.1:PORT
#   es.sh down   stop it and remove its data folder
#   es.sh stop-node N / start-node N   take node N away (or bring it back) while the cluster runs
# Settings (environment): SHOPLENS_ES_HOME (state folder, default .es in the repository),
# SHOPLENS_ES_NODES (3), SHOPLENS_ES_HEAP (heap of the one JVM that hosts every node, 1g),
# SHOPLENS_ES_PORT (first HTTP port; default: the first free one from 9250), SHOPLENS_ES_TIMEOUT (s, 240).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=es.sh
URL_VAR=SHOPLENS_ES_URL
STATE=${SHOPLENS_ES_HOME:-$ROOT/.es}
NODES=${SHOPLENS_ES_NODES:-3}
HEAP=${SHOPLENS_ES_HEAP:-1g}
TIMEOUT=${SHOPLENS_ES_TIMEOUT:-240}
FIRST_PORT=${SHOPLENS_ES_PORT:-}
PORT_FROM=9250
PORT_TO=9500
DOWNLOAD="about 40 MB"
JAVA_PROPS=(-Des.distribution.flavor=default -Des.distribution.type=tar)
CLASSPATH="$HERE/target/classes:$HERE/target/lib/*"
MAIN_CLASS=shoplens.EsCluster
# shellcheck source=../cluster.sh
. "$HERE/../cluster.sh"
cluster_main "$@"
