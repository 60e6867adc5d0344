"""Token language models: AudioLM's three stages and SoundStorm.

    speechjax train --config configs/token_lm.py:semantic_tiny --workdir /tmp/semantic \
        --config.data.path=LABELED --config.data.labels="('km',)" --config.task.semantic_labels=km \
        --config.task.semantic_rate=100

Presets (`configs/token_lm.py:PRESET` or `PRESET,tokens`):
    semantic_tiny   stage 1 on 50 Hz phone labels of the tiny synthetic corpus (a stand-in for k-means
                    units; point it at `speechjax label` output for real ones), 3 s crops
    coarse_tiny     stage 2: semantic + the first 2 of 4 RVQ levels, 1 s crops
    fine_tiny       stage 3: levels 3–4 given levels 1–2, 0.5 s crops
    soundstorm_tiny all 4 levels in parallel from semantic tokens, 2 s crops
    semantic, coarse, fine, soundstorm
                    AudioLM's / SoundStorm's sizes (Borsos et al. 2022, 2023): 12-layer d-1024 models,
                    w2v-BERT k-means tokens (1024, 25 Hz), SoundStream 12 × 1024 codes at 50 Hz (4 coarse
                    levels), crops 30 / 10 / 3 / 30 s, batch 256 (AudioLM: 16 TPU v4 chips, `v4-32` for
                    `speechjax compile`); labels `km` and `codec0`…`codec11`
The acoustic stages read `acoustic_codes` [B, F, 4] (or 4 label sets named by `task.acoustic_labels`).
`,tokens` reads `speechjax tokenize` output instead (README, "AudioLM end to end"): semantic tokens `km`
(HuBERT layer k-means, K = 100, 50 Hz), acoustic tokens `codec0`…`codec3` (the first 4 RVQ levels of
configs/soundstream.py:tiny, 256 codes, 50 Hz), and longer crops (semantic 3 s, coarse 2 s, fine 0.5 s,
SoundStorm 2 s) so that `speechjax generate` can continue a 1 s prompt by 1 s within the trained lengths.
(AudioLM's crops are 30 / 10 / 3 s; its models are `model_config("base")`.)
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import audiolm, soundstorm, token_lm
from speechjax.tasks import token_lm as token_lm_task

CROP_SECONDS = {"semantic_tiny": 3.0, "coarse_tiny": 1.0, "fine_tiny": 0.5, "soundstorm_tiny": 2.0}
TOKENS_CROP_SECONDS = {"semantic_tiny": 3.0, "coarse_tiny": 2.0, "fine_tiny": 0.5, "soundstorm_tiny": 2.0}
TOKENS = dict(semantic_labels="km", codebook_size=256, acoustic_labels=("codec0", "codec1", "codec2", "codec3"))
PRESETS = [preset + option for preset in CROP_SECONDS for option in ("", ",tokens")]
AUDIOLM_CROP_SECONDS = {"semantic": 30.0, "coarse": 10.0, "fine": 3.0, "soundstorm": 30.0}
AUDIOLM = dict(semantic_labels="km", semantic_vocab=1024, semantic_rate=25, codebook_size=1024, levels=12,
               coarse_levels=4, acoustic_labels=tuple(f"codec{level}" for level in range(12)))


def task_config(stage: str, tokens: bool) -> ml_collections.ConfigDict:
  cfg = ml_collections.ConfigDict(dict(
      name="token_lm",
      semantic_labels="phone_20ms",
      semantic_rate=50,
      acoustic_rate=50,
      acoustic_labels=(),
  ))
  if stage == "soundstorm":
    cfg.update(dict(name="soundstorm", semantic_repeat=1))   # semantic_rate · repeat = acoustic_rate
  else:
    cfg.update(dict(
        stage=stage,
        semantic_vocab=100,
        remove_duplicates=True,
        codebook_size=64,
        levels=4,
        coarse_levels=2,
    ))
  if tokens:
    cfg.update({k: v for k, v in TOKENS.items() if k in cfg})
  return cfg


def data_labels(stage: str, task) -> tuple:
  semantic = () if stage == "fine" else (task.semantic_labels,)
  return semantic + (() if stage == "semantic" else tuple(task.acoustic_labels))


def audiolm_config(stage: str) -> ml_collections.ConfigDict:
  """A stage at its paper's size: the model `base`, AudioLM's tokens, crop and batch."""
  task = task_config(stage, tokens=False)
  task.update({k: v for k, v in AUDIOLM.items() if k in task})
  if stage == "soundstorm":
    task.semantic_repeat = task.acoustic_rate // task.semantic_rate
    model = soundstorm.model_config("base")
  else:
    vocab = audiolm.Vocab(task.semantic_vocab, task.codebook_size, task.levels, task.coarse_levels)
    model = token_lm.model_config("base", vocab.size(stage))
  cfg = common.base_config(model, task)
  cfg.data.labels = data_labels(stage, task)
  cfg.data.batch_size = 256
  cfg.train.rng_impl = common.TPU_RNG_IMPL
  # Chosen by compiling for v4-32 (8 crops per core, bf16; docs/scaling.md §0). Semantic: 19.4 GiB per core
  # without remat, 12.3 with "dots". Coarse and fine (2251 and 1801 tokens): the hardware generator's
  # attention-dropout draws are kept for every layer even under full remat (61 and 40 GiB), and threefry's
  # compile for 150 s, so their attention dropout is off (the paper gives one dropout rate, kept on the
  # residual and FFN paths): coarse 8.9 GiB with "full", fine 12.4 with "dots".
  cfg.model.remat_policy = {"coarse": "full"}.get(stage, "dots")
  if stage in ("coarse", "fine"):
    cfg.model.attention_dropout = 0.0
  cfg.data.max_sample_size = cfg.data.min_sample_size = int(AUDIOLM_CROP_SECONDS[stage] * 16000)
  if stage != "soundstorm":
    cfg.model.max_length = audiolm.sequence_length(stage, vocab, token_lm_task.frames(cfg, task.semantic_rate),
                                                   token_lm_task.frames(cfg, task.acoustic_rate))
  cfg.optim.lr = 5e-4
  cfg.optim.warmup_steps = 10000
  cfg.optim.clip_norm = 1.0
  cfg.optim.weight_decay = 0.1
  cfg.train.num_steps = 1000000
  cfg.checkpoint.save_every = 5000
  return cfg


def get_config(arg=None):
  preset, _, option = common.check_preset("token_lm", arg or "semantic_tiny",
                                          PRESETS + list(AUDIOLM_CROP_SECONDS)).partition(",")
  if preset in AUDIOLM_CROP_SECONDS:
    return audiolm_config(preset)
  tokens = option == "tokens"
  stage = preset.removesuffix("_tiny")
  task = task_config(stage, tokens)
  if stage == "soundstorm":
    model = soundstorm.model_config("tiny")
    if tokens:
      model.codebook_size = TOKENS["codebook_size"]
  else:
    vocab = audiolm.Vocab(task.semantic_vocab, task.codebook_size, task.levels, task.coarse_levels)
    model = token_lm.model_config("tiny", vocab.size(stage))
  cfg = common.base_config(model, task)
  cfg.data.path = "data/synth-tiny/records"
  cfg.data.labels = data_labels(stage, cfg.task) if tokens else (cfg.task.semantic_labels,)
  cfg.data.batch_size = 8
  cfg.data.min_sample_size = 8000
  cfg.data.max_sample_size = int((TOKENS_CROP_SECONDS if tokens else CROP_SECONDS)[preset] * 16000)
  cfg.optim.lr = 2e-3
  cfg.optim.warmup_steps = 100
  cfg.optim.clip_norm = 1.0
  cfg.optim.weight_decay = 0.1
  cfg.train.num_steps = 1000
  cfg.train.log_every = 50
  cfg.train.eval_every = 250
  cfg.checkpoint.save_every = 1000
  return cfg
