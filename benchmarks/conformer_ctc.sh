#!/usr/bin/env bash
# CTC phone recognition from three tiny encoders pretrained with the same budget (README "The wav2vec 2.0
# effect" protocol): wav2vec 2.0, wav2vec2-conformer and w2v-BERT, each pretrained 2000 steps on synth-small,
# fine-tuned with configs/ctc.py:tiny (10 min of labels, 1500 steps), scored on the test split (held-out
# voices) with greedy and beam-8 decoding.
#
#   OUT=workdir/conformer_ctc bash benchmarks/conformer_ctc.sh
set -euo pipefail
OUT=${OUT:-workdir/conformer_ctc}
DATA=${DATA:-data/synth-small/records}
STEPS=${STEPS:-2000}
mkdir -p "$OUT"
: > "$OUT/results.txt"
for family in wav2vec2 wav2vec2_conformer w2v_bert; do
  [ -f "$OUT/$family/checkpoints/$STEPS/_CHECKPOINT_METADATA" ] || speechjax train \
      --config "configs/$family.py:tiny" --workdir "$OUT/$family" --config.data.path="$DATA" \
      --config.train.num_steps="$STEPS" --config.checkpoint.save_every="$STEPS"
  [ -f "$OUT/ctc_$family/config.json" ] && [ -d "$OUT/ctc_$family/checkpoints/1500" ] || speechjax train \
      --config configs/ctc.py:tiny --workdir "$OUT/ctc_$family" --config.init_from="$OUT/$family"
  speechjax eval --ckpt "$OUT/ctc_$family" --beam 8 --out "$OUT/ctc_$family/eval" > /dev/null
  echo "$family: $(tr -d '\n' < "$OUT/ctc_$family/eval/scores.json")" >> "$OUT/results.txt"
done
cat "$OUT/results.txt"
