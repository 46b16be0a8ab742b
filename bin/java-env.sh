# Sourced by bin/ scripts and .ci/run: picks Java 25 and the JVM flags every rwkv-flink JVM uses.
if [[ -x /usr/lib/jvm/temurin-25-jdk-amd64/bin/java ]]; then
  export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
fi
JAVA="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if ! "$JAVA" -version 2>&1 | grep -qE 'version "(2[5-9]|[3-9][0-9])'; then
  echo "rwkv-flink needs Java 25 or newer: set JAVA_HOME (found: $("$JAVA" -version 2>&1 | head -1))" >&2
  exit 1
fi
RWKV_JVM_FLAGS="--add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -XX:+UseParallelGC"
