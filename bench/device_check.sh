#!/usr/bin/env bash
# The prepared check for a lent GPU (issue 13), one call of the device tool:
#   run(command="bash bench/device_check.sh", carry=[".whl"], timeout_s=480)
# The machine's image has PyTorch, Lightning and transformers but not pydantic, Biopython or selfies: carry them as
# wheels in .whl/ (ignored through .git/info/exclude), fetched here with, for each of pydantic, pydantic_core,
# annotated-types, typing-inspection, biopython and selfies at the versions installed here:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp #     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl NAME==V
# It runs the CUDA tests, the device benchmark with eager and CUDA-graph forward passes, a host-overhead probe (a
# 1-layer, 64-wide denoiser whose forward pass costs almost nothing, so NFE/s measures the engine alone) and a profile
# of DTS*; CHECK="..." picks steps (`cli` adds a design through the command line on CUDA). Each step has its own
# time limit so that one hang cannot spend the lease. The log goes to $OUT/check.log and the profile's tables beside
# it (the tool brings back at most 8 files); the benchmark's CSVs stay on the machine, their rows are in the log.
set -o pipefail
OUT=${OUT:-runs/device_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . >/dev/null 2>&1 \
  || echo "editable install failed: running from the source tree"
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
step() { local limit=$1 name=$2; shift 2; echo "== $name"; local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$OUT/check.log" | grep -v "^\s*$" | tail -n "${TAIL:-12}"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - t0)) s"; }
# `cli` designs through the command line; it needs RDKit there (the oracle registry imports every family), whose
# wheel does not fit beside the working tree in one call, so it is left out unless CHECK names it.
CHECK=${CHECK:-tests eager graphs probe profile}
for what in $CHECK; do case $what in
  tests) TAIL=8 step 150 tests python3 -m pytest tests/test_device.py tests/test_cuda_graphs.py -q -p no:cacheprovider \
           -n 4 -rfE ;;
  cli) step 90 cli python3 -m seqtree.cli design recipes/protein.yaml --device cuda --precision bf16 \
         --set model.cuda_graphs=true --set budget.nfe=3000 --out /tmp/design-cuda ;;
  eager) step 120 eager python3 -m bench device --device cuda --precisions bf16 --batches 64 256 \
           --algorithms best_of_n smc dts_star mcts --seconds "${SECONDS_EACH:-3}" --out /tmp/eager ;;
  graphs) step 150 graphs python3 -m bench device --device cuda --precisions bf16 --batches 64 256 \
            --algorithms best_of_n smc dts_star mcts --seconds "${SECONDS_EACH:-3}" --cuda-graphs --out /tmp/graphs ;;
  probe) step 90 probe python3 -m bench device --device cuda --model random:64x1 --precisions bf16 --batches 64 256 \
           --algorithms dts_star mcts best_of_n --seconds 0.2 --cuda-graphs --out /tmp/probe ;;
  profile) TAIL=60 step 90 profile python3 -m bench device --device cuda --precisions bf16 --batches 64 \
             --algorithms dts_star --seconds 1 --cuda-graphs --profile --out /tmp/profile && cp /tmp/profile/profile_*.txt "$OUT"/ ;;
esac; done
