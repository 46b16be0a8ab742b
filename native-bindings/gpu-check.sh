#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, after native-bindings/gpu-prepare.sh staged .gpu/ here and
# the device tool carried it (carry [".gpu"]):
#   bash native-bindings/gpu-check.sh                        the native-bindings tests (package dev.rwkvflink.cuda)
#                                                            and every engine test class with "Cuda" in its name
#   bash native-bindings/gpu-check.sh --main CLASS [ARGS...] runs a main class (a benchmark, say) instead, on the
#                                                            same class path and JVM flags
# JUnit XML reports go to $OUT/junit when OUT is set. Exit status: non-zero when a test failed or none ran.
# Environment: GPU_JRE_ROOT (where jre.tgz is unpacked, default /tmp), GPU_JAVA_OPTS (extra JVM options),
# GPU_ALLOW_NO_CUDA=1 (run the tests even where CUDA is unavailable; by default that fails at once).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
gpu=.gpu
if [[ ! -f $gpu/jre.tgz || ! -d $gpu/lib ]]; then
  echo "gpu-check: $PWD/$gpu is incomplete: run native-bindings/gpu-prepare.sh on the build machine and carry .gpu" >&2
  exit 2
fi

jre_root=${GPU_JRE_ROOT:-/tmp}
java=$jre_root/jre/bin/java
[[ -x $java ]] || tar xzf "$gpu/jre.tgz" -C "$jre_root" || exit 2

flags=(--enable-native-access=ALL-UNNAMED --add-modules jdk.incubator.vector --sun-misc-unsafe-memory-access=allow
       -Xmx16g "-Drwkv.shared.dir=$gpu/shared")
# shellcheck disable=SC2206  # GPU_JAVA_OPTS is a list of options
flags+=(${GPU_JAVA_OPTS:-})
classpath="$gpu/test-classes/native-bindings:$gpu/test-classes/rwkv-engine:$gpu/lib/*"

if [[ ${1:-} == --main ]]; then
  shift
  [[ $# -ge 1 ]] || { echo "usage: gpu-check.sh --main CLASS [ARGS...]" >&2; exit 2; }
  exec "$java" "${flags[@]}" -cp "$classpath" "$@"
fi

echo "== $(uname -n): $(command -v nvidia-smi >/dev/null && nvidia-smi -L | head -4 | tr '\n' ' ')"
"$java" -version 2>&1 | head -1
# Without CUDA every GPU test would skip and the run would pass: on the device that is a failure.
"$java" "${flags[@]}" -cp "$classpath" dev.rwkvflink.cuda.CudaInfo
if [[ $? != 0 && -z ${GPU_ALLOW_NO_CUDA:-} ]]; then
  echo "gpu-check: FAILED (CUDA is unavailable, see the reason above; GPU_ALLOW_NO_CUDA=1 runs the tests anyway)"
  exit 3
fi

# Classes are selected one by one (a package selector would also scan the jars, which this runtime cannot open).
classes() { # DIR PATTERN: the top-level classes under DIR whose file name matches PATTERN
  (cd "$1" 2>/dev/null && find . -name "$2" ! -name '*$*' | sed 's:^\./::; s:\.class$::; s:/:.:g' | sort)
}
selectors=()
while read -r class; do
  [[ -n $class ]] && selectors+=(--select-class "$class")
done < <(classes "$gpu/test-classes/native-bindings" '*Test.class'; classes "$gpu/test-classes/rwkv-engine" '*Cuda*.class')
echo "== test selection: ${selectors[*]}"

reports=()
if [[ -n ${OUT:-} ]]; then
  mkdir -p "$OUT/junit" && reports=(--reports-dir "$OUT/junit")
fi

log=$(mktemp)
"$java" "${flags[@]}" -cp "$classpath" org.junit.platform.console.ConsoleLauncher execute \
  --disable-banner --disable-ansi-colors --details=tree --fail-if-no-tests \
  --include-classname '.*' "${selectors[@]}" "${reports[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
count() { sed -n "s/^\[ *\([0-9]*\) tests $1 *\]$/\1/p" "$log"; }
summary="$(count successful) successful, $(count failed) failed, $(count aborted) skipped by an assumption"
rm -f "$log"
if [[ $status == 0 ]]; then
  echo "gpu-check: PASSED ($summary)"
else
  echo "gpu-check: FAILED ($summary; JUnit exit status $status)"
fi
exit "$status"
