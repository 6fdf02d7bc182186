#!/usr/bin/env bash
# The GPU runs of issues 7 and 20, as one script for a lent machine (~12 min):
#   bash benchmarks/gpu.sh OUTDIR
# 1. fcnn's torch-parity tests on the GPU (float32 at full precision), a smoke-sized sweep;
# 2. LeNet b128 / b1 and BN-CNN b64, float32: the sub-millisecond steps where fcnn trailed lax (first, so
#    that they always run; their 60 s limit was too short in the second session);
# 3. the step benchmark with ResNet-18 at batch 256, float32 (TF32 allowed for both JAX and torch);
# 4. the same in mixed precision (bf16 compute, fp32 params/BN statistics): fcnn, lax, torch;
# 5. torchvision's networks (benchmarks/zoo.py): train b128 at 224², eval b1 and b256 at 224², float32 (TF32
#    allowed), fcnn, torch, lax and the Flax/Equinox peers where they have the model; models in the order
#    listed until the time limit (ResNet-50 and MobileNet-V2, the two with every peer, first);
# 6. the same in mixed precision (bf16 compute) for fcnn, torch and lax, on the first models;
# 7. the convolution formulations (benchmarks/ops_conv.py) at GPU batch sizes, if time is left.
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
  --rounds 5 --steps 10 --time-limit 90 --json "$out/small_fp32.json" 2>&1 | tee "$out/small_fp32.txt"
python3 -m benchmarks.run --cases resnet18:256 --impls lax,fcnn,torch,flax_linen,flax_nnx,equinox,haiku \
  --rounds 6 --steps 5 --time-limit 150 --json "$out/resnet_fp32.json" 2>&1 | tee "$out/resnet_fp32.txt"
python3 -m benchmarks.run --cases resnet18:256 --impls lax,fcnn,torch --dtype bfloat16 \
  --rounds 6 --steps 5 --time-limit 60 --json "$out/resnet_bf16.json" 2>&1 | tee "$out/resnet_bf16.txt"
zoo_models=resnet50,mobilenet_v2,mobilenet_v3_large,efficientnet_b0,convnext_tiny,densenet121,regnet_y_400mf,shufflenet_v2_x1_0
timeout -s INT 230 python3 -m benchmarks.zoo --models $zoo_models --modes train:128:224,eval:1:224,eval:256:224 \
  --impls fcnn,torch,lax,flax_linen,equinox --rounds 5 --calls 3 --seconds-per-case 10 --time-limit 200 \
  --json "$out/zoo_fp32.json" 2>&1 | tee "$out/zoo_fp32.txt"
timeout -s INT 95 python3 -m benchmarks.zoo --models $zoo_models --modes train:128:224,eval:1:224,eval:256:224 \
  --impls fcnn,torch,lax --dtype bfloat16 --rounds 5 --calls 3 --seconds-per-case 10 --time-limit 75 \
  --json "$out/zoo_bf16.json" 2>&1 | tee "$out/zoo_bf16.txt"
timeout 45 python3 -m benchmarks.ops_conv --cases resnet,bncnn --batch-scale 16 --repeats 5 2>&1 | tee "$out/ops_conv.txt"
