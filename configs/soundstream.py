"""SoundStream codec training (GAN: codec + STFT and waveform discriminators, residual VQ).

    speechjax train --config configs/soundstream.py:tiny --workdir /tmp/codec --config.data.path=data/synth-small/records
    speechjax codec encode --ckpt /tmp/codec --n_q 4 in.wav codes.npy

Presets: `tiny` (CPU: C = 8, D = 64, 8 × 256 codes, small discriminators, 0.5 s crops), `16khz` (AudioLM's
codec: C = 32, 12 × 1024 codes = 6 kbps at 50 Hz), `24khz` (the paper's: 24 × 1024 codes = 18 kbps at 75 Hz;
the prepared corpus is 16 kHz, so the task resamples it to 24 kHz: nothing above 8 kHz to learn).
The paper does not give its optimizer; Adam(β = 0.5, 0.9) at 3e-4 follows EnCodec, the nearest recipe.
"""
import ml_collections

from speechjax.configs import common
from speechjax.models import soundstream, soundstream_disc
from speechjax.train import optim

PRESETS = ("tiny", "16khz", "24khz")


def adam_config(lr: float, warmup_steps: int):
  cfg = optim.default_config()
  cfg.lr = lr
  cfg.b1 = 0.5
  cfg.b2 = 0.9
  cfg.eps = 1e-8
  cfg.weight_decay = 0.0
  cfg.schedule = "constant"
  cfg.warmup_steps = warmup_steps
  cfg.clip_norm = 1.0
  return cfg


def task_config(preset: str):
  return ml_collections.ConfigDict(dict(
      name="codec_gan",
      reconstruction_weight=1.0,
      adversarial_weight=1.0,
      feature_weight=100.0,
      commitment_weight=0.0,        # the paper trains codebooks by EMA only
      warmup_steps=0,               # generator-only steps before the GAN starts
      # FiLM denoising (needs model.film)
      denoise=False,
      noise_prob=0.5,
      noise_snr_db=(0.0, 20.0),
      discriminator=soundstream_disc.disc_config(preset),
      disc_optim=adam_config(3e-4, 0),
  ))


def get_config(arg=None):
  preset = common.check_preset("soundstream", arg or "tiny", PRESETS)
  cfg = common.base_config(soundstream.model_config(preset), task_config(preset))
  cfg.optim = adam_config(3e-4, 0)
  if preset == "tiny":
    cfg.data.path = "data/synth-tiny/records"
    cfg.data.batch_size = 8
    cfg.data.max_sample_size = 8000
    cfg.data.min_sample_size = 8000
    # 200 frames a batch over 256 codes, fewer for the later levels under quantizer dropout: the paper's
    # dead-code threshold of 2 would replace most codes at every step, and 0.5 still replaced ~700 of the
    # 2048 codes per step (the codebooks churned); 0.02 keeps replacement for codes really unused.
    cfg.model.dead_code_threshold = 0.02
    cfg.optim.lr = cfg.task.disc_optim.lr = 1e-3
    cfg.task.warmup_steps = 300
    cfg.train.num_steps = 2000
    cfg.train.log_every = 25
    cfg.checkpoint.save_every = 500
  else:
    cfg.train.rng_impl = common.TPU_RNG_IMPL
    cfg.data.batch_size = 32
    cfg.data.max_sample_size = 32000
    cfg.data.min_sample_size = 16000
    cfg.task.warmup_steps = 5000
    cfg.train.num_steps = 500000
    cfg.checkpoint.save_every = 5000
  return cfg
