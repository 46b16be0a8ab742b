#!/usr/bin/env bash
# A standalone Flink session cluster without flink-dist: JobManager and TaskManagers on the classpath this module
# resolved (target/flink-lib.classpath), each a background JVM with pid file and log in the work dir.
#
#   jobs/cluster/bin/cluster.sh start [N_TASKMANAGERS]   (default 1)
#   jobs/cluster/bin/cluster.sh start-taskmanager I       (TaskManager I again, e.g. after it died; not if running)
#   jobs/cluster/bin/cluster.sh stop
#   jobs/cluster/bin/cluster.sh status
#
# TaskManager I runs with resource id taskmanager-I (as the REST API and web UI name it), pid file pid/taskmanager-I.pid.
# Environment: RWKV_CLUSTER_DIR (work dir, default jobs/cluster/target/cluster), RWKV_CLUSTER_REST_PORT (8081),
# RWKV_CLUSTER_RPC_PORT (6123), RWKV_CLUSTER_SLOTS (slots per TaskManager, 2), RWKV_CLUSTER_TM_MEMORY (1728m),
# RWKV_CLUSTER_JM_MEMORY (1600m), RWKV_CLUSTER_START_TIMEOUT (s to wait for the REST endpoint, 60), RWKV_FLINK_LIB_CLASSPATH (classpath file, default target/flink-lib.classpath),
# RWKV_CLUSTER_METRICS_PORTS (Prometheus endpoints: each process takes the first free port of this range, 9250-9299;
# its log says which: "Started PrometheusReporter HTTP server on port N"),
# RWKV_CLUSTER_CONF_EXTRA (lines appended to config.yaml, e.g. "heartbeat.timeout: 6000"),
# RWKV_CLUSTER_LOG_EXTRA (lines appended to log4j.properties, e.g. "logger.rwkv.name = dev.rwkvflink" and
# "logger.rwkv.level = DEBUG").
set -euo pipefail
# shellcheck source=common.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/common.sh"

write_config() {
  local slots=${RWKV_CLUSTER_SLOTS:-2}
  mkdir -p "$CONF_DIR" "$LOG_DIR" "$PID_DIR" "$WORK/checkpoints" "$WORK/savepoints" "$WORK/tmp"
  cat > "$CONF_DIR/config.yaml" <<YAML
# Written by jobs/cluster/bin/cluster.sh; rewritten on every start.
jobmanager.rpc.address: 127.0.0.1
jobmanager.rpc.port: $RPC_PORT
jobmanager.bind-host: 127.0.0.1
jobmanager.memory.process.size: ${RWKV_CLUSTER_JM_MEMORY:-1600m}
taskmanager.bind-host: 127.0.0.1
taskmanager.host: 127.0.0.1
taskmanager.numberOfTaskSlots: $slots
taskmanager.memory.process.size: ${RWKV_CLUSTER_TM_MEMORY:-1728m}
parallelism.default: 1
rest.address: 127.0.0.1
rest.bind-address: 127.0.0.1
rest.port: $REST_PORT
blob.server.port: 0
io.tmp.dirs: $WORK/tmp
state.backend.type: rocksdb
execution.checkpointing.incremental: true
execution.checkpointing.dir: file://$WORK/checkpoints
execution.checkpointing.savepoint-dir: file://$WORK/savepoints
env.java.opts.all: "$CLUSTER_JVM_OPTS"
metrics.reporter.prom.factory.class: org.apache.flink.metrics.prometheus.PrometheusReporterFactory
metrics.reporter.prom.port: ${RWKV_CLUSTER_METRICS_PORTS:-9250-9299}
${RWKV_CLUSTER_CONF_EXTRA:-}
YAML
  cat > "$CONF_DIR/log4j.properties" <<'PROPS'
monitorInterval = 30
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.append = true
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5level %-60c %x - %m%n
PROPS
  if [[ -n ${RWKV_CLUSTER_LOG_EXTRA:-} ]]; then echo "$RWKV_CLUSTER_LOG_EXTRA" >> "$CONF_DIR/log4j.properties"; fi
  cp "$CONF_DIR/log4j.properties" "$CONF_DIR/log4j-cli.properties"
}

# BashJavaUtils as flink-dist's config.sh runs it: the lines prefixed BASH_JAVA_UTILS_EXEC_RESULT: are the result.
bash_java_utils() {
  local cmd=$1 out
  if ! out=$("$JAVA" -classpath "$CLASSPATH_LIB" org.apache.flink.runtime.util.bash.BashJavaUtils "$cmd" \
      --configDir "$CONF_DIR" 2>&1); then
    echo "BashJavaUtils $cmd failed:" >&2; echo "$out" >&2; exit 1
  fi
  local results
  results=$(echo "$out" | grep '^BASH_JAVA_UTILS_EXEC_RESULT:' | sed 's/^BASH_JAVA_UTILS_EXEC_RESULT://')
  if [[ $(echo "$results" | wc -l) -ne 2 ]]; then
    echo "BashJavaUtils $cmd: expected 2 result lines, got:" >&2; echo "$out" >&2; exit 1
  fi
  echo "$results"
}

start_process() { # name main-class jvm-params dynamic-configs
  local name=$1 main=$2 jvm_params=$3 dynamic=$4 log="$LOG_DIR/$1.log"
  # shellcheck disable=SC2086  # jvm params and dynamic configs are word lists, as in flink-dist's scripts
  nohup "$JAVA" $jvm_params $CLUSTER_JVM_OPTS \
      -Dlog.file="$log" -Dlog4j.configurationFile="file:$CONF_DIR/log4j.properties" \
      -classpath "$CLASSPATH_LIB" "$main" --configDir "$CONF_DIR" $dynamic \
      > "$LOG_DIR/$name.out" 2>&1 < /dev/null &
  echo $! > "$PID_DIR/$name.pid"
  echo "started $name (pid $!, log $log)"
}

alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

start_taskmanager_process() { # index resource-params
  start_process "taskmanager-$1" org.apache.flink.runtime.taskexecutor.TaskManagerRunner \
      "$(echo "$2" | head -n1)" "$(echo "$2" | tail -n1) -D taskmanager.resource-id=taskmanager-$1"
}

start_taskmanager() {
  local i=${1:-}
  [[ $i =~ ^[1-9][0-9]*$ ]] || { echo "TaskManager index must be >= 1, got '$i'" >&2; exit 2; }
  alive "$PID_DIR/jobmanager.pid" || { echo "no JobManager running in $WORK: start the cluster first" >&2; exit 1; }
  if alive "$PID_DIR/taskmanager-$i.pid"; then echo "taskmanager-$i is running" >&2; exit 1; fi
  start_taskmanager_process "$i" "$(bash_java_utils GET_TM_RESOURCE_PARAMS)"
}

start() {
  local n=${1:-1}
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "number of TaskManagers must be >= 1, got '$n'" >&2; exit 2; }
  for f in "$PID_DIR"/*.pid; do
    if alive "$f"; then echo "a cluster is running in $WORK ($f): stop it first" >&2; exit 1; fi
  done
  rm -f "$PID_DIR"/*.pid
  write_config
  local jm tm
  jm=$(bash_java_utils GET_JM_RESOURCE_PARAMS)
  start_process jobmanager org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint \
      "$(echo "$jm" | head -n1)" "$(echo "$jm" | tail -n1)"
  tm=$(bash_java_utils GET_TM_RESOURCE_PARAMS)
  for ((i = 1; i <= n; i++)); do
    start_taskmanager_process "$i" "$tm"
  done
  # Wait for the REST endpoint (the web UI), as a user would before submitting.
  local timeout=${RWKV_CLUSTER_START_TIMEOUT:-60}
  for ((t = 0; t < timeout * 4; t++)); do
    if curl -fsS -o /dev/null "$REST_URL/overview" 2>/dev/null; then
      echo "web UI: $REST_URL (config $CONF_DIR/config.yaml, logs $LOG_DIR)"
      return 0
    fi
    if ! alive "$PID_DIR/jobmanager.pid"; then
      echo "the JobManager exited; last lines of its output:" >&2
      tail -n 30 "$LOG_DIR/jobmanager.out" "$LOG_DIR/jobmanager.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.25
  done
  echo "no answer from $REST_URL/overview within ${timeout}s: see $LOG_DIR" >&2
  exit 1
}

stop() {
  local any=0
  for f in "$PID_DIR"/taskmanager-*.pid "$PID_DIR"/jobmanager.pid; do
    [[ -f $f ]] || continue
    local pid name
    pid=$(cat "$f"); name=$(basename "$f" .pid)
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
      echo "stopped $name (pid $pid)"; any=1
    fi
    rm -f "$f"
  done
  [[ $any == 1 ]] || echo "no cluster running in $WORK"
}

# The Prometheus endpoint a process opened, from its log ("" before it has).
metrics_url() {
  local port
  port=$(grep -o 'Started PrometheusReporter HTTP server on port [0-9]*' "$LOG_DIR/$1.log" 2>/dev/null | tail -n1 \
    | grep -o '[0-9]*$' || true)
  [[ -n $port ]] && echo ", metrics http://127.0.0.1:$port/metrics"
}

status() {
  for f in "$PID_DIR"/*.pid; do
    [[ -f $f ]] || continue
    local name
    name=$(basename "$f" .pid)
    if alive "$f"; then echo "$name: running (pid $(cat "$f")$(metrics_url "$name"))"; else echo "$name: dead"; fi
  done
  if curl -fsS "$REST_URL/overview"; then echo; else echo "no answer from $REST_URL/overview" >&2; return 1; fi
}

case "${1:-}" in
  start) start "${2:-1}" ;;
  start-taskmanager) start_taskmanager "${2:-}" ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start [N_TASKMANAGERS] | start-taskmanager I | stop | status" >&2; exit 2 ;;
esac
