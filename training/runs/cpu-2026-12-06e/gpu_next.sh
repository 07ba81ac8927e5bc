#!/usr/bin/env bash
# The next step of issue 22 on a lent GPU (PyTorch, no TensorFlow), one call of about 10 minutes: fill a large
# x4plus cache on the GPU, then the 32-conv student's L1 phase and its adversarial phase (p7's recipe), on the torch
# backend. Results under $OUT: l1/srvgg_x4.pth, adv/srvgg_x4.pth (with its discriminator), logs.
# Carry (ignored paths): $DATA (T91 + BSD200 as lossless WebP or PNG) and $START, an artifact folder of a 32-conv
# student. To make one: git show e4de50f:model/shipped/esrgan-real-x4/{manifest.json,weights.npz} into
# runs/l1/esrgan-real-x4, then python training/runs/cpu-2026-12-06d/deepen.py runs/l1/esrgan-real-x4
# runs/deep/esrgan-real-x4 32 (seconds; dl1 is that + 4000 CPU steps, which the GPU's L1 phase repeats).
# Back on a CPU: esrgan convert OUT/adv/srvgg_x4.pth --name esrgan-real-x4-adv --scale 4, esrgan interpolate with
# model/shipped/esrgan-real-x4 (its restoration end), bench/eval_distill.py --sets BSD40 and Set5,Set14.
# Dry run here (CPU, the OpenVINO-filled cache, seconds each): SAMPLES=2000 CACHE=/work/runs/teacher-cache-realesrgan-x4plus
#   L1_SECONDS=20 ADV_SECONDS=20 BATCH=4 bash training/runs/cpu-2026-12-06e/gpu_next.sh
set -euo pipefail
DATA=${DATA:-data/train_all}
START=${START:-runs/dl1/esrgan-real-x4}
OUT=${OUT:-out}
CACHE=${CACHE:-$OUT/teacher-cache-realesrgan-x4plus}
SAMPLES=${SAMPLES:-30000}       # ~15x the CPU cache; the fill runs before the L1 phase's clock starts
L1_SECONDS=${L1_SECONDS:-180}
ADV_SECONDS=${ADV_SECONDS:-240}
BATCH=${BATCH:-32}
common=(--backend torch --teacher realesrgan-x4plus --teacher-cache "$CACHE" --teacher-samples "$SAMPLES"
        --arch srvgg --num-feat 64 --num-conv 32 --second-order-prob 0.2 --perceptual-weight 0
        --batch-size "$BATCH" --hr-crop 128 --ema-decay 0.999 --steps 0)
esrgan train "$DATA" "${common[@]}" --init "$START" --hf-weight 3 --lr 2e-4 --seconds "$L1_SECONDS" \
    --out "$OUT/l1"
esrgan train "$DATA" "${common[@]}" --init "$OUT/l1/srvgg_x4.pth" --hf-weight 1 --grid-weight 10 \
    --overshoot-weight 10 --chroma-weight 2 --adversarial-weight 0.05 --discriminator vgg --d-num-feat 32 \
    --lr 1e-4 --seconds "$ADV_SECONDS" --out "$OUT/adv"
