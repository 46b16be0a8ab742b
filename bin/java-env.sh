# Sourced by bin/ scripts and .ci/run: picks Java 25 and the JVM flags every rwkv-flink JVM uses.
if [[ -x /usr/lib/jvm/temurin-25-jdk-amd64/bin/java ]]; then
  export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! "$JAVA" -version 2>&1 | grep -qE 'version "(2[5-9]|[3-9][0-9])'; then
  echo "rwkv-flink needs Java 25 or newer: set JAVA_HOME (found: $("$JAVA" -version 2>&1 | head -1))" >&2
  exit 1
fi
# The flags every JVM of the project needs: pom.xml's rwkv.jvm.flags, their one place.
RWKV_FLAGS_POM="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/pom.xml"
RWKV_BASE_FLAGS=$(sed -n 's:.*<rwkv.jvm.flags>\(.*\)</rwkv.jvm.flags>.*:\1:p' "$RWKV_FLAGS_POM")
if [[ -z $RWKV_BASE_FLAGS ]]; then
  echo "no <rwkv.jvm.flags> in $RWKV_FLAGS_POM" >&2
  exit 1
fi
# The CLI's JVMs: those flags and the throughput collector (the engine's worker threads allocate little).
RWKV_JVM_FLAGS="$RWKV_BASE_FLAGS -XX:+UseParallelGC"
