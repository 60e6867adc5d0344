#!/usr/bin/env bash
# Speech-LLaMA against CTC on the built-in corpus, same encoder, same labelled data, same step budget:
# the tiny wav2vec 2.0 pretrained for 2000 steps (benchmarks/conformer_ctc.sh) is fine-tuned (a) with a CTC
# head on characters, (b) as the audio encoder of configs/speech_llm.py:tiny (stride 4 = 80 ms, a 4-layer
# LLaMA trained from scratch, everything trained); both on the whole train split (2 h), scored on the test
# split (held-out voices): CER / WER, greedy.
#
#   ENCODER=workdir/conformer_ctc/wav2vec2 OUT=workdir/speech_llm_vs_ctc bash benchmarks/speech_llm_vs_ctc.sh
set -euo pipefail
ENCODER=${ENCODER:-workdir/conformer_ctc/wav2vec2}
OUT=${OUT:-workdir/speech_llm_vs_ctc}
STEPS=${STEPS:-1500}
mkdir -p "$OUT"
[ -d "$OUT/ctc/checkpoints/$STEPS" ] || speechjax train --config configs/ctc.py:tiny --workdir "$OUT/ctc" \
    --config.init_from="$ENCODER" --config.data.targets=transcript --config.data.max_target_length=160 \
    --config.data.train_subset_seconds=0 --config.train.num_steps="$STEPS" --config.checkpoint.save_every="$STEPS"
[ -d "$OUT/speech_llm/checkpoints/$STEPS" ] || speechjax train --config configs/speech_llm.py:tiny \
    --workdir "$OUT/speech_llm" --config.init_from="$ENCODER" --config.train.num_steps="$STEPS" \
    --config.checkpoint.save_every="$STEPS"
for run in ctc speech_llm; do
  speechjax eval --ckpt "$OUT/$run" --out "$OUT/$run/eval" > /dev/null
  echo "$run: $(tr -d '\n' < "$OUT/$run/eval/scores.json")"
done | tee "$OUT/results.txt"
