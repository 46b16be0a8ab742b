#!/usr/bin/env bash
# Submits the embedding job (target/rwkv-flink-job.jar, main class dev.rwkvflink.jobs.EmbedJob) to the cluster that
# cluster.sh started, detached; prints the JobID. Arguments are EmbedJob's --name value settings, e.g.
#   jobs/cluster/bin/submit.sh --bootstrap-servers 127.0.0.1:9092 --model /abs/model.bin --vocab /abs/vocab.txt
# Paths are read by the TaskManagers: give them absolute. RWKV_SUBMIT_OPTS adds CliFrontend run options (-p 2 ...).
set -euo pipefail
# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"
[[ -f $JOB_JAR ]] || { echo "no $JOB_JAR: build first (mvn -q -DskipTests -pl jobs/cluster -am package)" >&2; exit 1; }
[[ -f $CONF_DIR/config.yaml ]] || { echo "no $CONF_DIR/config.yaml: start the cluster first (cluster.sh start)" >&2; exit 1; }
mkdir -p "$LOG_DIR"
# shellcheck disable=SC2086
FLINK_CONF_DIR=$CONF_DIR exec "$JAVA" $CLUSTER_JVM_OPTS \
    -Dlog.file="$LOG_DIR/client.log" -Dlog4j.configurationFile="file:$CONF_DIR/log4j-cli.properties" \
    -classpath "$CLASSPATH_LIB" org.apache.flink.client.cli.CliFrontend run -d ${RWKV_SUBMIT_OPTS:-} \
    -c dev.rwkvflink.jobs.EmbedJob "$JOB_JAR" "$@"
