#!/usr/bin/env bash
# A local Elasticsearch 8 cluster for ShopLens's tests and local trials (not for production): dense_vector HNSW.
#   es8.sh up     build once (Maven), start NODES nodes on 127.0.0.1 in the background, wait for
#                 health green/yellow; the last line printed is SHOPLENS_ES8_URL=http://127.0.0.1:PORT
#   es8.sh down   stop it and remove its data folder
#   es8.sh stop-node N / start-node N   take node N away (or bring it back) while the cluster runs
# Elasticsearch refuses to run as root: under root the JVM runs as the user `nobody` (setpriv).
# Settings (environment): SHOPLENS_ES8_HOME (state folder, default .es8 in the repository),
# SHOPLENS_ES8_NODES (3), SHOPLENS_ES8_HEAP (heap of the one JVM that hosts every node, 1g),
# SHOPLENS_ES8_PORT (first HTTP port; default: the first free one from 9700), SHOPLENS_ES8_TIMEOUT (s, 240).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NAME=es8.sh
URL_VAR=SHOPLENS_ES8_URL
STATE=${SHOPLENS_ES8_HOME:-$ROOT/.es8}
NODES=${SHOPLENS_ES8_NODES:-3}
HEAP=${SHOPLENS_ES8_HEAP:-1g}
TIMEOUT=${SHOPLENS_ES8_TIMEOUT:-240}
FIRST_PORT=${SHOPLENS_ES8_PORT:-}
PORT_FROM=9700
PORT_TO=9950
DOWNLOAD="about 70 MB"
JAVA_PROPS=(-Dtests.timeoutSuite=2147483647 -Dtests.timeout=2147483647)
CLASSPATH="$HERE/target/classes:$HERE/target/lib/*"
MAIN_CLASS=shoplens.Es8Cluster
RUN_AS_NOBODY=1
# shellcheck source=../cluster.sh
. "$HERE/../cluster.sh"
cluster_main "$@"
