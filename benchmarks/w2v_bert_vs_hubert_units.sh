#!/usr/bin/env bash
# w2v-BERT units against HuBERT units on the synthetic corpus, one protocol for both.
#
#   LOOP=workdir/hubert_loop OUT=workdir/w2v_bert_units bash benchmarks/w2v_bert_vs_hubert_units.sh
#
# LOOP is a finished main job (README: `speechjax loop`): HuBERT iteration 1 and 2, 4000 steps each, tiny,
# batch 8 × ≤ 2 s. A tiny w2v-BERT (configs/w2v_bert.py:tiny, the same batch and crops) is trained for the same
# budgets: 4000 steps (= HuBERT iteration 1) and 8000 (= iterations 1 + 2). Then
#  1. PNMI of k-means (K = 100, fitted on the test split) on every hidden state of each checkpoint, and MFCC
#     (benchmarks/layer_pnmi.py);
#  2. K = 100 units of each model's best layer (fitted on the train split, held-out voices in test) → AudioLM's
#     semantic LM, next-token accuracy against a bigram (benchmarks/semantic_lm_vs_bigram.py).
# Results: $OUT/layer_pnmi.txt, $OUT/semantic_lm.txt.
set -euo pipefail
LOOP=${LOOP:-workdir/hubert_loop}
OUT=${OUT:-workdir/w2v_bert_units}
DATA=${DATA:-data/synth-small/records}
LM_STEPS=${LM_STEPS:-1000}
mkdir -p "$OUT"

for steps in 4000 8000; do
  [ -f "$OUT/w2v_bert_$steps/checkpoints/$steps/_CHECKPOINT_METADATA" ] || speechjax train \
      --config configs/w2v_bert.py:tiny --workdir "$OUT/w2v_bert_$steps" --config.data.path="$DATA" \
      --config.train.num_steps="$steps" --config.checkpoint.save_every="$steps"
done

declare -A CKPT=([hubert_iter1]="$LOOP/iter1/train" [hubert_iter2]="$LOOP/iter2/train"
                 [w2v_bert_4000]="$OUT/w2v_bert_4000" [w2v_bert_8000]="$OUT/w2v_bert_8000")
for name in hubert_iter1 hubert_iter2 w2v_bert_4000 w2v_bert_8000; do
  [ -f "$OUT/pnmi_$name.txt" ] || python benchmarks/layer_pnmi.py --ckpt "${CKPT[$name]}" --data "$DATA" \
      > "$OUT/pnmi_$name.txt"
done
for name in hubert_iter1 hubert_iter2 w2v_bert_4000 w2v_bert_8000; do
  echo "== $name"; grep -v "^MFCC" "$OUT/pnmi_$name.txt"
done > "$OUT/layer_pnmi.txt"
echo "== MFCC" >> "$OUT/layer_pnmi.txt"; grep "^MFCC" "$OUT/pnmi_hubert_iter1.txt" >> "$OUT/layer_pnmi.txt"

: > "$OUT/semantic_lm.txt"
for name in hubert_iter1 hubert_iter2 w2v_bert_4000 w2v_bert_8000; do
  layer=$(python -c "
import re, sys
rows = [re.match(r'hidden state (\d+): PNMI ([0-9.]+)', l) for l in open('$OUT/pnmi_$name.txt')]
print(max((float(m[2]), int(m[1])) for m in rows if m and int(m[1]) > 0)[1])")
  units="$OUT/units_$name"
  [ -f "$units/records/meta.json" ] || {
    speechjax dump --data "$DATA" --out "$units/features" --kind layer --ckpt "${CKPT[$name]}" --layer "$layer"
    speechjax kmeans --features "$units/features" --split train --k 100 --out "$units/km.npz"
    speechjax label --data "$DATA" --features "$units/features" --kmeans "$units/km.npz" --out "$units/records"
  }
  echo "$name layer $layer: $(python benchmarks/semantic_lm_vs_bigram.py --data "$units/records" --rate 50 \
      --vocab 100 --steps "$LM_STEPS" --workdir "$units/semantic_lm" | tail -1)" >> "$OUT/semantic_lm.txt"
done
cat "$OUT/layer_pnmi.txt" "$OUT/semantic_lm.txt"
