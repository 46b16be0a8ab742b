#!/usr/bin/env bash
# Stages everything the GPU checks need into .gpu/ at the repository root. Runs HERE, on the build machine
# (the GPU machine has no Java, no Maven and no network):
#   .gpu/lib/            rwkv-native-bindings and rwkv-engine jars, the engine's runtime dependencies (Jackson),
#                        the JUnit console launcher
#   .gpu/test-classes/   native-bindings/ and rwkv-engine/ test classes and resources
#   .gpu/shared/         reference/rwkv-cpp-tests/: the tiny models and expected logits the engine tests read
#   .gpu/jre.tgz         a jlink'd Java 25 runtime (../shared/tools/gpu-jre.sh; built once, kept)
# Then run on the device from the repository root, carrying [".gpu"]:  bash native-bindings/gpu-check.sh
#
# Environment:
#   RWKV_BUILD_DIR   Maven build folder of each module (-Drwkv.build.dir), default: target
#   GPU_MODELS       file patterns copied from ../shared/reference/rwkv-cpp-tests, default: the models the GPU tests read
#                    (all formats), every expected-logits file and SOURCES.md; e.g. add "tiny-rwkv-*-FP32.bin"
#   GPU_MAX_FILE_MB  reference files larger than this are skipped, default: 5
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
source bin/java-env.sh
export JAVA_HOME
export MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}"

build=${RWKV_BUILD_DIR:-target}
gpu=$root/.gpu
reference=$root/../shared/reference/rwkv-cpp-tests
dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

# .gpu/ is build output: keep it out of git (the device tool carries it only because it is named in carry).
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.gpu/' "$exclude" 2>/dev/null || echo '/.gpu/' >> "$exclude"

rm -rf "$gpu/lib" "$gpu/test-classes" "$gpu/shared"
mkdir -p "$gpu/lib" "$gpu/test-classes" "$gpu/shared/reference/rwkv-cpp-tests"

echo "== building native-bindings and rwkv-engine (jars and test classes, tests not run)"
mvn -B -ntp -q -Drwkv.build.dir="$build" -pl native-bindings,operators/rwkv-engine -am -DskipTests \
  package "$dependency_plugin:copy-dependencies" \
  -DincludeScope=runtime -DexcludeGroupIds=dev.rwkvflink -DoutputDirectory="$gpu/lib"

# The console launcher of the JUnit Platform that goes with the root pom's JUnit (5.x.y -> platform 1.x.y).
junit=$(sed -n 's:.*<junit.version>\(.*\)</junit.version>.*:\1:p' pom.xml | head -1)
if [[ $junit == 5.* ]]; then platform=1.${junit#5.}; else platform=$junit; fi
echo "== JUnit console launcher $platform"
mvn -B -ntp -q -N "$dependency_plugin:copy" \
  -Dartifact="org.junit.platform:junit-platform-console-standalone:$platform" -DoutputDirectory="$gpu/lib"

cp native-bindings/"$build"/rwkv-native-bindings-*.jar operators/rwkv-engine/"$build"/rwkv-engine-*.jar "$gpu/lib/"
cp -r native-bindings/"$build"/test-classes "$gpu/test-classes/native-bindings"
cp -r operators/rwkv-engine/"$build"/test-classes "$gpu/test-classes/rwkv-engine"

echo "== reference data (the layout the engine tests expect under -Drwkv.shared.dir)"
if [[ -d $reference ]]; then
  read -r -a patterns <<< "${GPU_MODELS:-tiny-rwkv-7v0-*.bin tiny-rwkv-4v0-660K-FP32.bin tiny-rwkv-5v1-730K-FP32.bin tiny-rwkv-5v2-730K-FP32.bin tiny-rwkv-6v0-3m-Q5_1.bin expected-logits-*.bin SOURCES.md}"
  max_bytes=$(( ${GPU_MAX_FILE_MB:-5} * 1024 * 1024 ))
  for pattern in "${patterns[@]}"; do
    for file in "$reference"/$pattern; do
      [[ -f $file ]] || continue
      if (( $(stat -c %s "$file") > max_bytes )); then
        echo "   skipping $(basename "$file") ($(du -h "$file" | cut -f1) > ${GPU_MAX_FILE_MB:-5} MB)"
        continue
      fi
      cp "$file" "$gpu/shared/reference/rwkv-cpp-tests/"
    done
  done
else
  echo "   $reference not found: the engine tests that need it will skip"
fi

if [[ ! -f $gpu/jre.tgz ]]; then
  echo "== Java runtime for the device"
  JDK="$JAVA_HOME" bash "$root/../shared/tools/gpu-jre.sh" "$gpu/jre.tgz"
fi

echo "== staged:"
du -sh "$gpu/jre.tgz" "$gpu/lib" "$gpu/test-classes" "$gpu/shared" | sed 's/^/   /'
total_kib=$(du -sk "$gpu" | cut -f1)
echo "   total $(du -sh "$gpu" | cut -f1) in $gpu"
if (( total_kib > 60 * 1024 )); then
  echo "warning: .gpu is over 60 MiB; the device tool carries at most 64 MiB (narrow GPU_MODELS)" >&2
fi
echo "next: the device tool with carry [\".gpu\"] and command: bash native-bindings/gpu-check.sh"
