#!/usr/bin/env bash
# Flink's SQL client (embedded mode) against the cluster that cluster.sh started, with the job jar on its classpath:
# RWKV_EMBED (dev.rwkvflink.operator.RwkvEmbedFunction) and the Kafka table connector are available to CREATE
# FUNCTION / CREATE TABLE. Arguments are the SQL client's, e.g.
#   jobs/cluster/bin/sql-client.sh -f statements.sql      (runs a file, then exits)
#   jobs/cluster/bin/sql-client.sh                        (interactive)
# Paths in statements (the model file) are read by the TaskManagers: give them absolute.
set -euo pipefail
# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
[[ -f $JOB_JAR ]] || { echo "no $JOB_JAR: build first (mvn -q -DskipTests -pl jobs/cluster -am package)" >&2; exit 1; }
[[ -f $SQL_CLIENT_CLASSPATH_FILE ]] || { echo "no $SQL_CLIENT_CLASSPATH_FILE: build first (mvn -q -DskipTests -pl jobs/cluster -am package)" >&2; exit 1; }
[[ -f $CONF_DIR/config.yaml ]] || { echo "no $CONF_DIR/config.yaml: start the cluster first (cluster.sh start)" >&2; exit 1; }
mkdir -p "$LOG_DIR"
# shellcheck disable=SC2086
FLINK_CONF_DIR=$CONF_DIR exec "$JAVA" $CLUSTER_JVM_OPTS \
    -Dlog.file="$LOG_DIR/sql-client.log" -Dlog4j.configurationFile="file:$CONF_DIR/log4j-cli.properties" \
    -classpath "$CLASSPATH_LIB:$(cat "$SQL_CLIENT_CLASSPATH_FILE")" org.apache.flink.table.client.SqlClient embedded --jar "$JOB_JAR" "$@"
