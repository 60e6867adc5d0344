#!/usr/bin/env bash
# Speech-LLaMA on a multilingual built-in corpus (README "Speech-LLaMA", docs/speech_llm.md): every number of
# the table, from nothing.
#   corpus   synth small (2 h), en/de/es/fr, grammar sentences (speechjax.data.grammar), 10 train and
#            2 held-out test voices per language
#   encoder  tiny w2v-BERT pretrained 2000 steps on it (20 ms frames), then CTC on characters for STEPS
#            steps (the paper's encoder is CTC-trained too); a run straight from the self-supervised encoder
#            shows why
#   text LM  configs/llama.py:tiny, 1000 steps on the train transcripts (characters); held-out perplexity
#            against n-grams (benchmarks/text_lm_perplexity.py)
#   runs     all train transcripts, batch 8, STEPS steps each from the CTC encoder: Speech-LLaMA frozen /
#            LoRA / LoRA on a random LLM, strides 80 (default) / 160 / 320 / 960 ms, and LoRA with
#            3 multi-token heads; baselines: the CTC encoder itself and CTC for 2 × STEPS (the same total
#            budget as CTC + Speech-LLaMA); scored on the test split, greedy and beam 4
#
#   OUT=workdir/speech_llm_ml STEPS=1000 bash benchmarks/speech_llm_multilingual.sh
set -euo pipefail
OUT=${OUT:-workdir/speech_llm_ml}
CORPUS=${CORPUS:-data/synth-ml}
STEPS=${STEPS:-1000}
DATA=$CORPUS/records
mkdir -p "$OUT"
done_at() { [ -f "$1/checkpoints/$2/_CHECKPOINT_METADATA" ]; }

[ -f "$CORPUS/synth.json" ] || speechjax synth --size small --languages en,de,es,fr --text grammar --out "$CORPUS"
[ -d "$DATA" ] || speechjax prepare --source "$CORPUS" --out "$DATA"
done_at "$OUT/w2v_bert" 2000 || speechjax train --config configs/w2v_bert.py:tiny --workdir "$OUT/w2v_bert" \
    --config.data.path="$DATA" --config.train.num_steps=2000 --config.checkpoint.save_every=2000
done_at "$OUT/text_lm" 1000 || speechjax train --config configs/llama.py:tiny --workdir "$OUT/text_lm" \
    --config.data.path="$DATA" --config.train.num_steps=1000 --config.checkpoint.save_every=1000
python benchmarks/text_lm_perplexity.py --ckpt "$OUT/text_lm" --out "$OUT/text_lm/perplexity.json"

ctc() {
  local name=$1 steps=$2
  done_at "$OUT/$name" "$steps" || speechjax train --config configs/ctc.py:tiny --workdir "$OUT/$name" \
      --config.init_from="$OUT/w2v_bert" --config.data.path="$DATA" --config.data.targets=transcript \
      --config.data.max_target_length=160 --config.data.train_subset_seconds=0 \
      --config.train.num_steps="$steps" --config.checkpoint.save_every="$steps"
}
ctc ctc "$STEPS"
ctc ctc_long $((2 * STEPS))
speech_llm() {
  local name=$1 encoder=$2; shift 2
  done_at "$OUT/$name" "$STEPS" || speechjax train --config configs/speech_llm.py:tiny --workdir "$OUT/$name" \
      --config.init_from="$encoder" --config.data.path="$DATA" --config.train.num_steps="$STEPS" \
      --config.checkpoint.save_every="$STEPS" "$@"
}
PRETRAINED=--config.llm_init="$OUT/text_lm"
speech_llm frozen_ssl_encoder "$OUT/w2v_bert" "$PRETRAINED" --config.task.llm_mode=frozen
speech_llm frozen "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=frozen
speech_llm lora "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=lora
speech_llm lora_random_llm "$OUT/ctc" --config.task.llm_mode=lora
speech_llm lora_160ms "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=lora --config.model.stride=8
speech_llm lora_320ms "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=lora --config.model.stride=16
speech_llm lora_960ms "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=lora --config.model.stride=48
speech_llm lora_mtp3 "$OUT/ctc" "$PRETRAINED" --config.task.llm_mode=lora --config.model.llm.mtp_heads=3

for run in ctc ctc_long frozen_ssl_encoder frozen lora lora_random_llm lora_160ms lora_320ms lora_960ms \
    lora_mtp3; do
  [ -f "$OUT/$run/eval/scores.json" ] || speechjax eval --ckpt "$OUT/$run" --beam 4 --out "$OUT/$run/eval" > /dev/null
done
python benchmarks/speech_llm_decode.py --ckpt "$OUT/lora_mtp3" --out "$OUT/lora_mtp3/decode_speed.json"
python benchmarks/speech_llm_table.py --runs "$OUT" --corpus "$CORPUS" | tee "$OUT/table.md"
