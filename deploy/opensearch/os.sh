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
NAME=os.sh
URL_VAR=SHOPLENS_OS_URL
STATE=${SHOPLENS_OS_HOME:-$ROOT/.os}
NODES=${SHOPLENS_OS_NODES:-3}
HEAP=${SHOPLENS_OS_HEAP:-1g}
TIMEOUT=${SHOPLENS_OS_TIMEOUT:-240}
FIRST_PORT=${SHOPLENS_OS_PORT:-}
PORT_FROM=9650
PORT_TO=9850
DOWNLOAD="about 60 MB"
JAVA_PROPS=(-Dopensearch.distribution.type=tar)
CLASSPATH="$HERE/target/classes:$HERE/target/lib/*:$HERE/target/knn/*"
MAIN_CLASS=shoplens.OsCluster
# shellcheck source=../cluster.sh
. "$HERE/../cluster.sh"
cluster_main "$@"
