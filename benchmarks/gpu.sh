#!/usr/bin/env bash
# The GPU run of issue 7, as one script for a lent machine (~10 min):
#   bash benchmarks/gpu.sh OUTDIR
# 1. fcnn's torch-parity tests on the GPU (float32 at full precision), a smoke-sized sweep;
# 2. LeNet b128 / b1 and BN-CNN b64, float32: the sub-millisecond steps where fcnn trailed lax (first, so
#    that they always run; their 60 s limit was too short in the second session);
# 3. the step benchmark with ResNet-18 at batch 256, float32 (TF32 allowed for both JAX and torch);
# 4. the same in mixed precision (bf16 compute, fp32 params/BN statistics): fcnn, lax, torch;
# 5. the convolution formulations (benchmarks/ops_conv.py) at GPU batch sizes, if time is left.
# Haiku is not in the GPU image: put its wheels in .whl/ (see benchmarks/README.md).
set -u
out=${1:-/tmp/gpu-out}
mkdir -p "$out"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
{ nvidia-smi -L; python3 -c "import jax, torch; print('jax', jax.__version__, jax.devices(), 'torch', torch.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$out/env.txt"
JAX_DEFAULT_MATMUL_PRECISION=highest FCNN_HYPOTHESIS_PROFILE=quick timeout -s INT 80 \
  python3 -m pytest tests/functional tests/nn tests/models/test_models.py -n 8 -p no:cacheprovider -x -q 2>&1 | tail -25 > "$out/tests.txt"
cat "$out/tests.txt"
python3 -m benchmarks.run --cases lenet:128,lenet:1,bncnn:64 --impls lax,fcnn,torch,flax_linen,equinox \
  --rounds 5 --steps 10 --time-limit 120 --json "$out/small_fp32.json" 2>&1 | tee "$out/small_fp32.txt"
python3 -m benchmarks.run --cases resnet18:256 --impls lax,fcnn,torch,flax_linen,flax_nnx,equinox,haiku \
  --rounds 6 --steps 5 --time-limit 220 --json "$out/resnet_fp32.json" 2>&1 | tee "$out/resnet_fp32.txt"
python3 -m benchmarks.run --cases resnet18:256 --impls lax,fcnn,torch --dtype bfloat16 \
  --rounds 6 --steps 5 --time-limit 80 --json "$out/resnet_bf16.json" 2>&1 | tee "$out/resnet_bf16.txt"
timeout 60 python3 -m benchmarks.ops_conv --cases resnet,bncnn --batch-scale 16 --repeats 5 2>&1 | tee "$out/ops_conv.txt"
