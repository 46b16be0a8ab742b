#!/usr/bin/env bash
# The end-to-end GPU benchmarks (docs/benchmarks.md, "The whole job on the GPU"). Runs ON the GPU machine from the
# repository root, after native-bindings/gpu-prepare.sh staged .gpu/ here and the device tool carried it
# (carry [".gpu"]); each part is a main class run through gpu-check.sh --main, its log under $OUT when set.
#
#   bash native-bindings/gpu-bench.sh PART...
#
# Parts:
#   operator-0.1b   OperatorBench: the operator vs the bare engine on the same batches, RWKV-7 0.1B shape, bf16,
#                   256 and 1,024 keys x 16 and 128 tokens, heap and RocksDB state          (~2 min)
#   operator-1.5b   the same for the 1.5B shape, heap state                                 (~3 min)
#   pipeline-1k     PipelineBench: EmbedJob Kafka -> Kafka on a MiniCluster, 1,000 open documents, chunks of 64
#                   tokens: checkpoints every 1 s and 10 s, parallelism 1 and 2, exactly-once and at-least-once
#   pipeline-10k    the same with 10,000 open documents (checkpoints every 10 s and 1 s, parallelism 1)
#   pipeline-sinks  10,000 open documents, checkpoints every 1 s: the sinks chained to the operator vs in a task
#                   of their own (EmbedJob --separate-sinks), alternating, twice each; then the same job on RocksDB
#   goal-10k        issue 14's GPU goal in one call: the bare engine (and the operator) at the job's batch shape,
#                   1,024 keys x 64 tokens, then the job with 10,000 open documents, checkpoints every 1 s, twice
#   survey          CudaToleranceSurvey over 200 seeds (bf16 error distributions behind the GPU test limits)
#   budget          SnapshotBudgetBench: a cold key's snapshot read vs its log replay per token, 0.1B and 1.5B
#                   shapes, bf16 (the GPU constant of the token-log budget K)                    (~1 min)
#   engine          CudaBench, the rows of issue 15 (prefill 1 x 4096, 256 x 16, 1,024 x 128, decode), 0.1B and
#                   1.5B shapes, with the ceilings of the same run                                  (~1 min)
#   engine-ab       the same twice: first with .gpu/baseline-engine.jar ahead of this build's classes (an earlier
#                   build's dev/rwkvflink/engine/backend/cuda/ classes and .cu files without CudaBench*.class,
#                   staged by hand: see docs/benchmarks.md), then this build alone                  (~2 min)
#   decode-pdl      the decode rows with the kernels of a step launched plainly and as programmatic dependent
#                   launches (-Drwkv.cuda.dependentLaunches=false, then the default)                     (~1 min)
#   decode-kernels  Nsight Compute: every kernel's device time in 4 decode steps (hidden, logits, 8 streams),
#                   summed per kernel name, 0.1B and 1.5B                                            (~2 min)
# Environment: BENCH_JAVA_OPTS (extra JVM options, e.g. a larger -Xmx).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
vocab=.gpu/shared/reference/rwkv_vocab_v20230424.txt
status=0

run() { # NAME HEAP CLASS ARGS...: one main class, logged to $OUT/NAME.log
  local name=$1 heap=$2
  shift 2
  echo "== $name: $*"
  local log=/dev/null
  [[ -n ${OUT:-} ]] && log=$OUT/$name.log
  GPU_JAVA_OPTS="-Xmx$heap -Drwkv.vocab=$vocab -Dorg.apache.avro.SERIALIZABLE_PACKAGES=dev.rwkvflink.schema -Dlog4j2.level=WARN ${BENCH_JAVA_OPTS:-}" \
    bash native-bindings/gpu-check.sh --main "$@" 2>&1 | tee "$log" | grep -v '^\s*at \|^[0-9:.]* WARN\|^[0-9:.]* ERROR'
  local rc=${PIPESTATUS[0]}
  [[ $rc == 0 ]] || { echo "== $name: exit status $rc"; status=1; }
}

engine_rows=(--shapes 0.1b,1.5b --reps 5 --rows prefill,256x16,1024x128,decode)
ncu_bin=$(command -v ncu || echo /usr/local/cuda/bin/ncu)

for part in "$@"; do
  case $part in
    engine)
      run engine 16g dev.rwkvflink.engine.backend.cuda.CudaBench "${engine_rows[@]}" ;;
    engine-ab)
      if [[ -f .gpu/baseline-engine.jar ]]; then
        GPU_CLASSPATH_PREPEND=$PWD/.gpu/baseline-engine.jar \
          run engine-baseline 16g dev.rwkvflink.engine.backend.cuda.CudaBench "${engine_rows[@]}"
      else
        echo "== engine-ab: no .gpu/baseline-engine.jar, measuring this build only"
      fi
      run engine 16g dev.rwkvflink.engine.backend.cuda.CudaBench "${engine_rows[@]}" ;;
    decode-pdl)
      for opts in -Drwkv.cuda.dependentLaunches=false ""; do
        BENCH_JAVA_OPTS="${BENCH_JAVA_OPTS:-} $opts" run "decode-pdl${opts//[^a-zA-Z0-9]/_}" 16g \
          dev.rwkvflink.engine.backend.cuda.CudaBench --no-ceilings --shapes 0.1b,1.5b --rows decode
      done ;;
    decode-kernels)
      for shape in 0.1b 1.5b; do
        GPU_JAVA_LAUNCHER="$ncu_bin --clock-control none --graph-profiling node --metrics gpu__time_duration.sum --print-summary per-kernel" \
          run "decode-kernels-$shape" 16g dev.rwkvflink.engine.backend.cuda.CudaBench --no-ceilings --shapes "$shape" \
          --rows decode --reps 3 --decode-reps 3
      done ;;
    operator-0.1b)
      run operator-0.1b 32g dev.rwkvflink.operator.OperatorBench random:0.1b:BF16 256,1024 16,128 5 cuda heap,rocksdb ;;
    operator-1.5b)
      run operator-1.5b 64g dev.rwkvflink.operator.OperatorBench random:1.5b:BF16 256,1024 16,128 3 cuda heap ;;
    pipeline-1k)
      run pipeline-1k 48g dev.rwkvflink.jobs.bench.PipelineBench --model random:0.1b:BF16 --vocab "$vocab" \
        --backend cuda --chunks 8 --chunk-tokens 64 --max-batch-keys 1024 --latency-seconds 10 \
        --runs 1000:1000:1:exactly-once,1000:10000:1:exactly-once,1000:1000:2:exactly-once,1000:1000:1:at-least-once ;;
    pipeline-10k)
      run pipeline-10k 90g dev.rwkvflink.jobs.bench.PipelineBench --model random:0.1b:BF16 --vocab "$vocab" \
        --backend cuda --chunks 4 --chunk-tokens 64 --max-batch-keys 1024 --latency-seconds 10 \
        --phase-timeout-s 150 --runs 10000:10000:1:exactly-once,10000:1000:1:exactly-once ;;
    pipeline-sinks)
      run pipeline-sinks 90g dev.rwkvflink.jobs.bench.PipelineBench --model random:0.1b:BF16 --vocab "$vocab" \
        --backend cuda --chunks 4 --chunk-tokens 64 --max-batch-keys 1024 --latency-seconds 5 \
        --phase-timeout-s 150 --runs 10000:1000:1:exactly-once:chained,10000:1000:1:exactly-once:separate,10000:1000:1:exactly-once:chained,10000:1000:1:exactly-once:separate
      run pipeline-10k-rocksdb 90g dev.rwkvflink.jobs.bench.PipelineBench --model random:0.1b:BF16 --vocab "$vocab" \
        --backend cuda --state rocksdb --chunks 4 --chunk-tokens 64 --max-batch-keys 1024 --latency-seconds 5 \
        --phase-timeout-s 150 --runs 10000:1000:1:exactly-once:separate ;;
    goal-10k)
      run goal-engine 32g dev.rwkvflink.operator.OperatorBench random:0.1b:BF16 1024 64 5 cuda heap
      run goal-pipeline 90g dev.rwkvflink.jobs.bench.PipelineBench --model random:0.1b:BF16 --vocab "$vocab" \
        --backend cuda --chunks 4 --chunk-tokens 64 --max-batch-keys 1024 --latency-seconds 10 \
        --phase-timeout-s 150 --runs 10000:1000:1:exactly-once,10000:1000:1:exactly-once ;;
    budget)
      run budget-0.1b 16g dev.rwkvflink.operator.SnapshotBudgetBench random:0.1b:BF16 cuda 256 64 5
      run budget-1.5b 32g dev.rwkvflink.operator.SnapshotBudgetBench random:1.5b:BF16 cuda 256 64 5 ;;
    survey)
      run survey 16g dev.rwkvflink.engine.backend.cuda.CudaToleranceSurvey 200 ;;
    *)
      echo "unknown part '$part' (operator-0.1b, operator-1.5b, pipeline-1k, pipeline-10k, pipeline-sinks, goal-10k, survey, budget)" >&2
      exit 2 ;;
  esac
done
exit $status
