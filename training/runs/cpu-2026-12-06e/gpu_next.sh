#!/usr/bin/env bash
# The next step of issue 22 on a lent GPU (PyTorch, no TensorFlow), as three device calls, each well under the
# 600 s limit (torch runs save only at their end):
#   bash training/runs/cpu-2026-12-06e/gpu_next.sh fill   # x4plus on the GPU fills $CACHE (kept on the warm machine)
#   bash training/runs/cpu-2026-12-06e/gpu_next.sh l1     # the 32-conv student: L1 + 3 x high-pass to x4plus
#   bash training/runs/cpu-2026-12-06e/gpu_next.sh adv    # then p7's adversarial recipe (VGG discriminator)
# Results under $OUT (what comes back: keep it to the .pth files and logs): l1/srvgg_x4.pth, adv/srvgg_x4.pth.
# Carry (ignored paths, 64 MiB in all): $DATA (T91 + BSD200 as lossless WebP), $START and $TEACHER.
# - $START: an artifact folder of a 32-conv student. git show e4de50f:model/shipped/esrgan-real-x4/{manifest.json,
#   weights.npz} into runs/l1/esrgan-real-x4, then: python training/runs/cpu-2026-12-06d/deepen.py
#   runs/l1/esrgan-real-x4 runs/deep/esrgan-real-x4 32 (same function as the 16-conv L1 student; dl1 is that plus
#   4000 CPU steps, which the l1 phase repeats in minutes).
# - $TEACHER: x4plus's ncnn .param with its .bin beside it (from the PyPI package that `esrgan models install
#   official` reads; the .bin is 32 MiB), since the device has no network.
# Back on a CPU: esrgan convert OUT/adv/srvgg_x4.pth --name esrgan-real-x4-adv --scale 4; esrgan interpolate
# model/shipped/esrgan-real-x4 that --name esrgan-real-x4 --default-strength 1; bench/eval_distill.py --sets BSD40
# (goal there: likeness >= 28.6 and texture >= 0.37 at once; BENCHMARKS "Calibrated against the held-out set").
# Dry run here (CPU, the OpenVINO-filled cache): CACHE=/work/runs/teacher-cache-realesrgan-x4plus SAMPLES=2000
#   TEACHER=realesrgan-x4plus L1_SECONDS=20 ADV_SECONDS=20 BATCH=4 bash gpu_next.sh l1 (then adv)
set -euo pipefail
PHASE=${1:?fill, l1 or adv}
DATA=${DATA:-data/train_all}
START=${START:-runs/deep/esrgan-real-x4}
TEACHER=${TEACHER:-runs/teacher/realesrgan-x4plus.param}
OUT=${OUT:-out}
CACHE=${CACHE:-runs/teacher-cache}    # an ignored path in the checkout: kept between calls, never sent back
SAMPLES=${SAMPLES:-20000}             # 10x the CPU cache
L1_SECONDS=${L1_SECONDS:-300}
ADV_SECONDS=${ADV_SECONDS:-300}
BATCH=${BATCH:-32}
common=(--backend torch --teacher "$TEACHER" --teacher-cache "$CACHE" --teacher-samples "$SAMPLES"
        --arch srvgg --num-feat 64 --num-conv 32 --second-order-prob 0.2 --perceptual-weight 0
        --batch-size "$BATCH" --hr-crop 128 --ema-decay 0.999 --steps 0)
case "$PHASE" in
  fill) esrgan train "$DATA" "${common[@]}" --init "$START" --seconds 1 --out "$OUT/fill" ;;
  l1) esrgan train "$DATA" "${common[@]}" --init "$START" --hf-weight 3 --lr 2e-4 --seconds "$L1_SECONDS" \
        --out "$OUT/l1" ;;
  adv) esrgan train "$DATA" "${common[@]}" --init "$OUT/l1/srvgg_x4.pth" --hf-weight 1 --grid-weight 10 \
        --overshoot-weight 10 --chroma-weight 2 --adversarial-weight 0.05 --discriminator vgg --d-num-feat 32 \
        --lr 1e-4 --seconds "$ADV_SECONDS" --out "$OUT/adv" ;;
  *) echo "phase: fill, l1 or adv" >&2; exit 2 ;;
esac
