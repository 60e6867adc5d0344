"""A LLaMA-architecture LM on the corpus transcripts (speechjax.tasks.text_lm): the text LM a Speech-LLaMA
starts from (`configs/speech_llm.py`, `--config.llm_init=W`).

    speechjax train --config configs/llama.py:tiny --workdir W

Presets: `tiny` (CPU: 4 layers, D=128, GQA 4/2, characters of synth-small's transcripts); `smollm_135m`,
`tinyllama_1b`, `llama3_2_1b` (the public checkpoints' shapes, bf16, FSDP; set `data.text_tokenizer` to the
checkpoint's tokenizer.json and `data.path` to your text's records).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import llama


def get_config(arg=None):
  preset = common.check_preset("llama", arg or "tiny", ["tiny", "smollm_135m", "tinyllama_1b", "llama3_2_1b"])
  cfg = common.base_config(llama.model_config(preset), ml_collections.ConfigDict(dict(name="text_lm")))
  cfg.data.path = "data/synth-small/records"
  cfg.data.targets = "transcript"
  cfg.data.max_target_length = 160
  cfg.data.batch_size = 32
  cfg.data.min_sample_size = 0
  cfg.data.max_sample_size = 480000   # 30 s: the audio is not used, and no utterance is dropped for length
  cfg.optim.lr = 2e-3
  cfg.optim.warmup_steps = 100
  cfg.optim.weight_decay = 0.0
  cfg.train.num_steps = 2000
  cfg.train.log_every = 50
  cfg.train.eval_every = 500
  cfg.train.eval_steps = 20
  cfg.checkpoint.save_every = 500
  if preset != "tiny":
    cfg.train.rng_impl = common.TPU_RNG_IMPL
    cfg.data.max_target_length = 2047         # subword tokens: 2048 with BOS
    cfg.data.batch_size = 64
    cfg.model.dtype = "bfloat16"
    cfg.mesh.shape = (1, -1, 1)               # FSDP over every device
    cfg.optim.lr = 3e-4
  return cfg
