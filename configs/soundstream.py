"""SoundStream codec training (GAN: codec + STFT and waveform discriminators, residual VQ).

    speechjax train --config configs/soundstream.py:tiny --workdir /tmp/codec --config.data.path=data/synth-small/records
    speechjax codec encode --ckpt /tmp/codec --n_q 4 in.wav codes.npy

Presets: `tiny` (CPU: C = 8, D = 64, 8 × 256 codes, small discriminators, 0.5 s crops), `16khz` (AudioLM's
codec: C = 32, 12 × 1024 codes = 6 kbps at 50 Hz), `24khz` (the paper's: 24 × 1024 codes = 18 kbps at 75 Hz;
the prepared corpus is 16 kHz, so the task resamples it to 24 kHz: nothing above 8 kHz to learn).
The paper does not give its optimizer; Adam(β = 0.5, 0.9) at 3e-4 follows EnCodec, the nearest recipe.
"""
import ml_collections

from speechjax.data import pipeline
from speechjax.models import soundstream, soundstream_disc
from speechjax.parallel import mesh
from speechjax.train import optim, trainer


def adam_config(lr: float, warmup_steps: int):
  cfg = optim.default_config()
  cfg.lr, cfg.b1, cfg.b2, cfg.eps, cfg.weight_decay = lr, 0.5, 0.9, 1e-8, 0.0
  cfg.schedule, cfg.warmup_steps, cfg.clip_norm = "constant", warmup_steps, 1.0
  return cfg


def task_config(preset: str):
  return ml_collections.ConfigDict(dict(
      name="codec_gan", reconstruction_weight=1.0, adversarial_weight=1.0, feature_weight=100.0,
      commitment_weight=0.0,        # the paper trains codebooks by EMA only
      warmup_steps=0,               # generator-only steps before the GAN starts
      denoise=False, noise_prob=0.5, noise_snr_db=(0.0, 20.0),   # FiLM denoising (needs model.film)
      discriminator=soundstream_disc.disc_config(preset), disc_optim=adam_config(3e-4, 0)))


def get_config(arg=None):
  preset = arg or "tiny"
  cfg = ml_collections.ConfigDict()
  cfg.model = soundstream.model_config(preset)
  cfg.task = task_config(preset)
  cfg.data = pipeline.default_config()
  cfg.optim = adam_config(3e-4, 0)
  cfg.train = trainer.default_train_config()
  cfg.mesh = mesh.default_config()
  cfg.checkpoint = trainer.default_checkpoint_config()
  if preset == "tiny":
    cfg.data.path = "data/synth-tiny/records"
    cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 8, 8000, 8000
    # 200 frames a batch over 256 codes, fewer for the later levels under quantizer dropout: the paper's
    # dead-code threshold of 2 would replace most codes at every step, and 0.5 still replaced ~700 of the
    # 2048 codes per step (the codebooks churned); 0.02 keeps replacement for codes really unused.
    cfg.model.dead_code_threshold = 0.02
    cfg.optim.lr = cfg.task.disc_optim.lr = 1e-3
    cfg.task.warmup_steps = 300
    cfg.train.num_steps, cfg.train.log_every = 2000, 25
    cfg.checkpoint.save_every = 500
  else:
    cfg.data.batch_size, cfg.data.max_sample_size, cfg.data.min_sample_size = 32, 32000, 16000
    cfg.task.warmup_steps = 5000
    cfg.train.num_steps = 500000
    cfg.checkpoint.save_every = 5000
  return cfg
