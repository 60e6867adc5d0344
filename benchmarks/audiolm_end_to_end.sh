#!/usr/bin/env bash
# AudioLM end to end on the synthetic corpus: semantic tokens from the HuBERT loop (the main job), acoustic
# tokens from a SoundStream checkpoint, the three stages and SoundStorm trained on them, then a continuation.
#
#   LOOP=workdir/hubert_loop CODEC=workdir/codec OUT=workdir/audiolm STEPS=1000 bash benchmarks/audiolm_end_to_end.sh
#
# Prints, per stage: train loss at the first and last logged step, and the last eval metrics (held-out voices).
set -euo pipefail
LOOP=${LOOP:-workdir/hubert_loop}
CODEC=${CODEC:-workdir/codec}
OUT=${OUT:-workdir/audiolm}
STEPS=${STEPS:-1000}
DATA=${DATA:-data/synth-small/records}      # the records the loop ran on
LAYER=$(python -c "import json; print(json.load(open('$LOOP/iter2/layer_choice.json'))['layer'])")

[ -f "$OUT/semantic_tokens/meta.json" ] || speechjax tokenize --model hubert --ckpt "$LOOP/iter1/train" --layer "$LAYER" \
    --kmeans "$LOOP/iter2/kmeans.npz" --data "$DATA" --out "$OUT/semantic_tokens"
[ -f "$OUT/tokens/meta.json" ] || speechjax tokenize --model soundstream --ckpt "$CODEC" --n_q 4 \
    --data "$OUT/semantic_tokens" --out "$OUT/tokens"
for stage in semantic coarse fine soundstorm; do
  [ -f "$OUT/$stage/checkpoints/$STEPS/_CHECKPOINT_METADATA" ] || speechjax train \
      --config "configs/token_lm.py:${stage}_tiny,tokens" --workdir "$OUT/$stage" \
      --config.data.path="$OUT/tokens" --config.train.num_steps="$STEPS" --config.checkpoint.save_every="$STEPS"
done
python - "$OUT" <<'PY'
import json, sys
for stage in ("semantic", "coarse", "fine", "soundstorm"):
  rows = [json.loads(line) for line in open(f"{sys.argv[1]}/{stage}/metrics.jsonl")]
  train = [r for r in rows if "train/loss" in r]
  evals = [r for r in rows if any(k.startswith("eval/") for k in r)]
  last = {k: round(v, 3) for k, v in (evals[-1] if evals else {}).items() if k.startswith("eval/")}
  print(f"{stage}: train loss {train[0]['train/loss']:.3f} (step {train[0]['step']}) -> "
        f"{train[-1]['train/loss']:.3f} (step {train[-1]['step']}); {last}")
PY
python - "$DATA" "$OUT/prompt.wav" <<'PY'
import sys, soundfile as sf
from speechjax.cluster import features
utt = next(features.utterances(sys.argv[1], "test"))
sf.write(sys.argv[2], utt["audio"][:16000], 16000)
PY
speechjax generate --prompt "$OUT/prompt.wav" --seconds 1 --out "$OUT/continuation.wav" \
    --semantic "$OUT/semantic" --coarse "$OUT/coarse" --fine "$OUT/fine" --codec "$CODEC" \
    --hubert "$LOOP/iter1/train" --layer "$LAYER" --kmeans "$LOOP/iter2/kmeans.npz"
