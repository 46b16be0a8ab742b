#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after native-bindings/gpu-prepare.sh staged .gpu/ here and
# the device tool carried it (carry [".gpu"]):
#   bash native-bindings/gpu-check.sh                        every test class named *Cuda* of rwkv-engine,
#                                                            flink-operator and jobs, and the native-bindings tests
#                                                            (*Test: package dev.rwkvflink.cuda)
#   GPU_TESTS="CLASS[#METHOD] ..." bash native-bindings/gpu-check.sh   these test classes (or methods) instead,
#                                                            e.g. GPU_TESTS="dev.rwkvflink.jobs.EmbedJobITCase"
#   bash native-bindings/gpu-check.sh --main CLASS [ARGS...] runs a main class (a benchmark, say) instead, on the
#                                                            union of those modules' test class paths
# It first unpacks .gpu/*.tar.xz (the runtime, the jars, the classes, the reference models: see gpu-prepare.sh) to
# GPU_BUNDLE_DIR, in parallel, in a few seconds; an archive already unpacked there is not unpacked again.
# Each module's tests run in their own JVM on that module's Maven test class path (Flink MiniCluster and test
# harness, heap and RocksDB state, ...). A test that starts the embedded Kafka broker gets its child JVM from the
# carried runtime (java.home) with the carried broker jars (-Drwkv.kafka.classpath). Tests find the reference data
# under -Drwkv.shared.dir=GPU_BUNDLE_DIR/shared (reference/rwkv-cpp-tests/, reference/rwkv_vocab_v20230424.txt).
# JUnit XML reports go to $OUT/junit/<module> when OUT is set. Exit status: non-zero when a test failed or none ran.
# Environment: GPU_BUNDLE_DIR (where the archives are unpacked, default ${GPU_JRE_ROOT:-/tmp}/rwkv-gpu),
# GPU_JAVA_OPTS (extra JVM options), GPU_TESTS (the selection above), GPU_CLASSPATH_PREPEND (with --main: class path
# entries ahead of the bundle's, e.g. a jar of an earlier build's engine classes for a same-run A/B benchmark),
# GPU_JAVA_LAUNCHER (with --main: a command in front of java, e.g. Nsight Compute's ncu with its options),
# GPU_ALLOW_NO_CUDA=1 (run the tests even where CUDA is unavailable, e.g. to check the bundle on a CPU machine; by
# default that fails at once).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
gpu=.gpu
parts=(jre lib classes shared)
for part in "${parts[@]}"; do
  if [[ ! -f $gpu/$part.tar.xz ]]; then
    echo "gpu-check: $PWD/$gpu/$part.tar.xz is missing: run native-bindings/gpu-prepare.sh on the build machine" \
      "and carry .gpu" >&2
    exit 2
  fi
done

bundle=${GPU_BUNDLE_DIR:-${GPU_JRE_ROOT:-/tmp}/rwkv-gpu}
mkdir -p "$bundle" || exit 2
bundle=$(cd "$bundle" && pwd)
start=$(date +%s.%N)
unpacked=()
for part in "${parts[@]}"; do
  stamp=$(stat -c '%s %Y' "$gpu/$part.tar.xz"; cat "$gpu/$part.tar.xz.key" 2>/dev/null)
  [[ -d $bundle/$part && $(cat "$bundle/.$part.stamp" 2>/dev/null) == "$stamp" ]] && continue
  unpacked+=("$part")
  ( rm -rf "${bundle:?}/$part" "$bundle/.$part.stamp" &&
    xz -dc -T0 "$gpu/$part.tar.xz" | tar -x -C "$bundle" && echo "$stamp" > "$bundle/.$part.stamp" ) &
done
failed=0
for job in $(jobs -p); do wait "$job" || failed=1; done
if [[ $failed != 0 ]]; then
  echo "gpu-check: unpacking .gpu/*.tar.xz to $bundle failed" >&2
  exit 2
fi
if (( ${#unpacked[@]} )); then
  echo "== unpacked ${unpacked[*]} to $bundle in $(awk -v s="$start" -v e="$(date +%s.%N)" \
    'BEGIN { printf "%.1f", e - s }') s ($(du -sm "$bundle" | cut -f1) MB)" >&2
fi
# Scripts may name the vocabulary as .gpu/shared/reference/rwkv_vocab_v20230424.txt (gpu-bench.sh): a copy there
# (1 MB; gpu-prepare.sh removes it again).
vocab=$bundle/shared/reference/rwkv_vocab_v20230424.txt
if [[ -f $vocab && ! -f $gpu/shared/reference/${vocab##*/} ]]; then
  mkdir -p "$gpu/shared/reference" && cp "$vocab" "$gpu/shared/reference/"
fi

java=$bundle/jre/bin/java
classpath() { # NAME: the class path of a module (or kafka-broker, main), absolute, joined with ':'
  sed "/^$/d; s:^:$bundle/:" "$bundle/classes/classpath/$1" | paste -sd:
}
# the project's JVM flags from their one place, pom.xml's rwkv.jvm.flags (the working directory is the checkout's root)
# shellcheck disable=SC2207  # the flags are words without blanks
flags=($(sed -n 's:.*<rwkv.jvm.flags>\(.*\)</rwkv.jvm.flags>.*:\1:p' pom.xml)
       -Xmx16g "-Drwkv.shared.dir=$bundle/shared" "-Drwkv.kafka.classpath=$(classpath kafka-broker)")
# shellcheck disable=SC2206  # GPU_JAVA_OPTS is a list of options
flags+=(${GPU_JAVA_OPTS:-})

if [[ ${1:-} == --main ]]; then
  shift
  [[ $# -ge 1 ]] || { echo "usage: gpu-check.sh --main CLASS [ARGS...]" >&2; exit 2; }
  # shellcheck disable=SC2086  # GPU_JAVA_LAUNCHER is a command line (a profiler, say) put in front of java
  exec ${GPU_JAVA_LAUNCHER:-} "$java" "${flags[@]}" -cp "${GPU_CLASSPATH_PREPEND:+$GPU_CLASSPATH_PREPEND:}$(classpath main)" "$@"
fi

echo "== $(uname -n): $(command -v nvidia-smi >/dev/null && nvidia-smi -L | head -4 | tr '\n' ' ')"
"$java" -version 2>&1 | head -1
# Without CUDA every GPU test would skip and the run would pass: on the device that is a failure.
"$java" "${flags[@]}" -cp "$(classpath main)" dev.rwkvflink.cuda.CudaInfo
if [[ $? != 0 && -z ${GPU_ALLOW_NO_CUDA:-} ]]; then
  echo "gpu-check: FAILED (CUDA is unavailable, see the reason above; GPU_ALLOW_NO_CUDA=1 runs the tests anyway)"
  exit 3
fi

# Classes are selected one by one (a package selector would also scan the jars, which this runtime cannot open).
modules=(native-bindings rwkv-engine flink-operator jobs)
classes() { # DIR PATTERN: the top-level classes under DIR whose file name matches PATTERN
  (cd "$1" 2>/dev/null && find . -name "$2" ! -name '*$*' | sed 's:^\./::; s:\.class$::; s:/:.:g' | sort)
}
declare -A selectors
if [[ -n ${GPU_TESTS:-} ]]; then
  for test in ${GPU_TESTS}; do
    class=${test%%#*}
    owner=
    for module in "${modules[@]}"; do
      [[ -f $bundle/classes/test/$module/${class//.//}.class ]] && { owner=$module; break; }
    done
    if [[ -z $owner ]]; then
      echo "gpu-check: GPU_TESTS names $class, which is not among the test classes of ${modules[*]}" >&2
      exit 2
    fi
    if [[ $test == *#* ]]; then
      selectors[$owner]+=" --select-method $test"
    else
      selectors[$owner]+=" --select-class $test"
    fi
  done
else
  for module in "${modules[@]}"; do
    pattern='*Cuda*.class'
    [[ $module == native-bindings ]] && pattern='*Test.class'
    while read -r class; do
      [[ -n $class ]] && selectors[$module]+=" --select-class $class"
    done < <(classes "$bundle/classes/test/$module" "$pattern")
  done
fi

status=0
ran=0
total() { awk '{ s += $1 } END { print s + 0 }' <<< "$1"; }
successful= failed_count= aborted=
for module in "${modules[@]}"; do
  [[ -n ${selectors[$module]:-} ]] || continue
  ran=$((ran + 1))
  echo "== $module:${selectors[$module]}"
  reports=()
  if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT/junit/$module" && reports=(--reports-dir "$OUT/junit/$module")
  fi
  log=$(mktemp)
  # shellcheck disable=SC2086  # the selectors are words
  "$java" "${flags[@]}" -cp "$(classpath "$module")" org.junit.platform.console.ConsoleLauncher execute \
    --disable-banner --disable-ansi-colors --details=tree --fail-if-no-tests \
    --include-classname '.*' ${selectors[$module]} "${reports[@]}" 2>&1 | tee "$log"
  module_status=${PIPESTATUS[0]}
  count() { sed -n "s/^\[ *\([0-9]*\) tests $1 *\]$/\1/p" "$log"; }
  successful+="$(count successful) " failed_count+="$(count failed) " aborted+="$(count aborted) "
  rm -f "$log"
  if [[ $module_status != 0 ]]; then
    echo "== $module: JUnit exit status $module_status"
    status=$module_status
  fi
done
if (( ran == 0 )); then
  echo "gpu-check: FAILED (no test class selected)"
  exit 2
fi
summary="$(total "${successful// /$'\n'}") successful, $(total "${failed_count// /$'\n'}") failed,"
summary+=" $(total "${aborted// /$'\n'}") skipped by an assumption"
if [[ $status == 0 ]]; then
  echo "gpu-check: PASSED ($summary)"
else
  echo "gpu-check: FAILED ($summary; JUnit exit status $status)"
fi
exit "$status"
