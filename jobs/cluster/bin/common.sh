# Sourced by cluster.sh and submit.sh: Java, the work dir, the cluster's classpath and JVM options.
CLUSTER_BIN=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLUSTER_MODULE=$(dirname "$CLUSTER_BIN")
RWKV_ROOT=$(cd "$CLUSTER_MODULE/../.." && pwd)
# shellcheck source=../../../bin/java-env.sh
source "$RWKV_ROOT/bin/java-env.sh"
WORK=${RWKV_CLUSTER_DIR:-$CLUSTER_MODULE/target/cluster}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
CONF_DIR=$WORK/conf
LOG_DIR=$WORK/log
PID_DIR=$WORK/pid
REST_PORT=${RWKV_CLUSTER_REST_PORT:-8081}
RPC_PORT=${RWKV_CLUSTER_RPC_PORT:-6123}
REST_URL=http://127.0.0.1:$REST_PORT
LIB_CLASSPATH_FILE=${RWKV_FLINK_LIB_CLASSPATH:-$CLUSTER_MODULE/target/flink-lib.classpath}
JOB_JAR=${RWKV_JOB_JAR:-$CLUSTER_MODULE/target/rwkv-flink-job.jar}
SQL_CLIENT_CLASSPATH_FILE=${RWKV_SQL_CLIENT_CLASSPATH:-$CLUSTER_MODULE/target/sql-client.classpath}
# Every JVM of the cluster: the project's flags (Vector API, native access; bin/java-env.sh), Avro's trusted packages,
# and the --add-opens Flink's own config.yaml sets for Java 17+ (env.java.default-opts.all).
CLUSTER_JVM_OPTS="$RWKV_BASE_FLAGS -Dorg.apache.avro.SERIALIZABLE_PACKAGES=dev.rwkvflink.schema \
--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED \
--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED \
--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED \
--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED \
--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED \
--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED \
--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED ${RWKV_CLUSTER_JAVA_OPTS:-}"
CLUSTER_JVM_OPTS=$(echo "$CLUSTER_JVM_OPTS" | tr -s ' ')
if [[ ${1:-} != "stop" && ${1:-} != "status" ]]; then
  if [[ ! -f $LIB_CLASSPATH_FILE ]]; then
    echo "no $LIB_CLASSPATH_FILE: build first (mvn -q -DskipTests -pl jobs/cluster -am package)" >&2
    exit 1
  fi
  CLASSPATH_LIB=$(cat "$LIB_CLASSPATH_FILE")
fi
