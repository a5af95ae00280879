#!/usr/bin/env bash
# One training cycle on a lent GPU machine, at most MINUTES long, from the current weights;
# the weights come back in $OUT. Run it there from the checkout's root, after packing the
# faces here with `python recipes/gpu_pack.py` and carrying runs/gpu-pack along:
#
#   bash recipes/gpu-cycle.sh            # on the GPU machine; $OUT is the folder that returns
#
# What comes back (each file under the 16 MiB the machine returns per file):
#   weights.pt.part-aa, -ab, …   the float16 export (cat them: bnet-fast-xl weights that
#                                `umsn train --init` and `umsn deblur --model` take)
#   weights.json                 its manifest entry; log.jsonl, curves.png, samples.png
#
# Settings, from the environment: MINUTES (training, default 6.5: a call may run 10 minutes,
# and the faces, the 25,000-kernel bank and the export take about 2 of them),
# INIT (weights to start from, default the bundled default), MODEL, BATCH, LR, MIX, STEPS
# (the cosine schedule's length: set it to what MINUTES holds, or the run stops before the
# rate has decayed; the weight average smooths that), SEED, PACK.
set -euo pipefail
cd "$(dirname "$0")/.."

PACK=${PACK:-runs/gpu-pack}
OUT=${OUT:-runs/gpu-out}
MINUTES=${MINUTES:-6.5}
INIT=${INIT:-umsn_cli/bundled/bnet-fast-xl.wild-v9.pt}
MODEL=${MODEL:-umsn-fast-xl}
BATCH=${BATCH:-64}
LR=${LR:-1e-4}
MIX=${MIX:-wide}
STEPS=${STEPS:-6000}
SEED=${SEED:-21}
RUN=${RUN:-/tmp/umsn-gpu-run}

[ -d "$PACK/celeba" ] || { echo "no $PACK: run python recipes/gpu_pack.py here and carry it" >&2; exit 2; }
mkdir -p "$OUT"
# The GPU machine's Python has torch and the rest; the wheels bring what it lacks.
python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/umsn-site "$PACK"/wheels/*.whl
export PYTHONPATH="/tmp/umsn-site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 UMSN_OFFLINE=1
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

rm -rf "$RUN"
python3 -m umsn_cli train bnet --model "$MODEL" --data "$PACK/celeba" --crop 0.75 \
  --extra-data "$PACK/wild" --val-data "$PACK/val" --degradation "$MIX" \
  --init "$INIT" --snet "$INIT" --batch-size "$BATCH" --lr "$LR" --min-lr 5e-6 --warmup 200 \
  --grad-clip 0.5 --no-perceptual --steps "$STEPS" --time-limit "$MINUTES" --seed "$SEED" \
  --val-every 1000 --ckpt-every 500 --log-every 50 \
  --export "$OUT/weights.pt" --tag gpu -o "$RUN"

# The export is over the 16 MiB a returned file may hold: it comes back in pieces.
split -b 15m "$OUT/weights.pt" "$OUT/weights.pt.part-"
rm "$OUT/weights.pt"
cp "$RUN/log.jsonl" "$RUN/curves.png" "$RUN/samples.png" "$OUT/"
ls -l "$OUT"
