#!/usr/bin/env bash
# TPU compiles (libtpu on this CPU: `pip install -e ".[tpu]"`) of the 1B-class LLaMA text-LM step and the
# Speech-LLaMA step (w2v-BERT Base encoder + Llama-3.2-1B, LoRA) with FSDP on a v5e-16, bf16.
# The vocabulary is Llama 3's size (128256): a placeholder tokenizer.json with that many word-level entries
# stands in for the real one (the step's shapes depend on the size only). Writes <name>.json here.
set -euo pipefail
HERE=$(dirname "$0")
TOKENIZER=$(mktemp -d)/tokenizer.json
python - "$TOKENIZER" <<'PY'
import sys
import tokenizers
vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, **{f"w{i}": i for i in range(3, 128256)}}
tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>")).save(sys.argv[1])
PY
speechjax compile --config configs/llama.py:llama3_2_1b --topology v5e-16 \
    --config.data.text_tokenizer="$TOKENIZER" --config.data.batch_size=16 --config.model.remat_policy=dots \
    --json "$HERE/llama3_2_1b_text_lm_bf16_v5e-16_fsdp.json"
speechjax compile --config configs/speech_llm.py:llama3_2_1b --topology v5e-16 \
    --config.data.text_tokenizer="$TOKENIZER" --config.data.batch_size=16 \
    --json "$HERE/speech_llm_llama3_2_1b_lora_bf16_v5e-16_fsdp.json"
