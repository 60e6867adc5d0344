"""Speech-LLaMA (speechjax.tasks.speech_llm): an encoder's frames, stacked by `model.stride` and projected,
prepended to a LLaMA decoder that writes the transcript (characters of the built-in corpus).

    speechjax train --config configs/speech_llm.py:tiny --workdir W [--config.init_from=ENCODER_WORKDIR]
    speechjax eval --ckpt W                                  # greedy transcripts, CER / WER

Presets: `tiny` (CPU: tiny wav2vec 2.0 encoder, 4-layer LLaMA with GQA, stride 4 = 80 ms, everything
trained: the LLM starts from random weights here, so `frozen` / `lora` need a pretrained LLM);
`llama3_2_1b` (the paper's shape on a pod: a w2v-BERT Base conformer encoder, Llama-3.2-1B with LoRA, FSDP;
set `llm_init` to a converted checkpoint and `data.text_tokenizer` to its tokenizer.json).
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import llama, w2v_bert, wav2vec2


def get_config(arg=None):
  preset = common.check_preset("speech_llm", arg or "tiny", ["tiny", "llama3_2_1b"])
  tiny = preset == "tiny"
  model = ml_collections.ConfigDict(dict(
      model_type="speech_llm",
      encoder=wav2vec2.model_config("tiny") if tiny else w2v_bert.model_config("base"),
      llm=llama.model_config(preset),
      stride=4,
  ))
  task = ml_collections.ConfigDict(dict(
      name="speech_llm",
      llm_mode="full" if tiny else "lora",
      freeze_encoder=False,
      lora_rank=8,
      lora_alpha=16.0,
      mtp_weight=1.0,      # loss weight of the multi-token heads (model.llm.mtp_heads > 0)
  ))
  cfg = common.base_config(model, task)
  cfg.init_from = ""              # encoder workdir/checkpoint (any encoder family), "" = random init
  cfg.llm_init = ""               # LLaMA workdir/checkpoint (configs/llama.py run), "" = random init
  cfg.model.encoder.mask_prob = 0.1
  cfg.model.encoder.mask_length = 4
  cfg.model.encoder.layerdrop = 0.0
  cfg.data.path = "data/synth-small/records"
  cfg.data.targets = "transcript"
  cfg.data.max_target_length = 160
  cfg.data.batch_size = 8
  cfg.data.min_sample_size = 0
  cfg.data.max_sample_size = 112000
  cfg.data.bucket_boundaries = (48000, 80000, 112000)
  cfg.optim.lr = 1e-3
  cfg.optim.warmup_steps = 100
  cfg.optim.weight_decay = 0.0
  cfg.train.num_steps = 2000
  cfg.train.log_every = 50
  cfg.train.eval_every = 500
  cfg.train.eval_steps = 20
  cfg.checkpoint.save_every = 500
  if not tiny:
    cfg.train.rng_impl = common.TPU_RNG_IMPL
    cfg.data.path = "data/librispeech/records"
    cfg.data.max_target_length = 128          # subword tokens
    cfg.data.batch_size = 64
    cfg.data.max_sample_size = 320000         # 20 s
    cfg.data.bucket_boundaries = (160000, 320000)
    cfg.model.encoder.dtype = cfg.model.llm.dtype = "bfloat16"
    cfg.mesh.shape = (1, -1, 1)               # FSDP over every device
    cfg.optim.lr = 1e-4
    cfg.train.num_steps = 20000
    cfg.train.eval_every = 2000
    cfg.checkpoint.save_every = 2000
  return cfg
