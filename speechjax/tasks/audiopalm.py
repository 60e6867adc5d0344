"""AudioPaLM-style training of one token LM on (audio tokens, transcript) pairs in both directions.

Batch fields: `labels/<task.audio_labels>` [B, F] audio tokens (k-means units; −1 = padding) and the
pipeline's `targets` [B, L] (transcript ids, `data.targets="transcript"`, whole utterances). Each row is an
ASR or a TTS example with probability ½ (`speechjax.models.audiopalm.sequences`). The joint vocabulary size
is derived from `data.target_vocab` (scanned from the train split when empty) and `task.audio_vocab`, and
written into `model.vocab_size`. Metrics: `ce`, `accuracy`, and `asr_accuracy` / `tts_accuracy` per
predicted token of each direction.
"""
from __future__ import annotations

import jax

from speechjax.config import require
from speechjax.data import vocab as vocab_lib
from speechjax.models import audiopalm
from speechjax.tasks import label_checks
from speechjax.tasks.token_lm import SequenceTask, frames


def joint_vocab(config) -> audiopalm.JointVocab:
  """Resolves `data.target_vocab` and `model.vocab_size` (in place) and returns the joint vocabulary."""
  vocab_lib.resolve(config.data)
  vocab = audiopalm.JointVocab(tuple(config.data.target_vocab), config.task.audio_vocab)
  config.model.vocab_size = vocab.size
  return vocab


class Task(SequenceTask):

  def __init__(self, config):
    require(config.data.targets == "transcript", "data.targets", config.data.targets, "must be 'transcript'")
    label_checks.check_label_set(config, label_checks.data_meta(config), "task.audio_labels",
                                 config.task.audio_labels, rate=config.task.audio_rate,
                                 rate_field="task.audio_rate", classes_field="task.audio_vocab",
                                 classes=config.task.audio_vocab)
    self.vocab = joint_vocab(config)
    self.seq_len = 4 + frames(config, config.task.audio_rate) + config.data.max_target_length
    require(self.seq_len <= config.model.max_length, "model.max_length", config.model.max_length,
            f"must be >= 4 + audio frames + data.max_target_length = {self.seq_len}")
    super().__init__(config)

  def sequences(self, batch, rng):
    audio = batch[f"labels/{self.config.task.audio_labels}"]
    asr = jax.random.bernoulli(rng, 0.5, [audio.shape[0]])
    tokens, _, target = audiopalm.sequences(self.vocab, audio, batch["targets"], asr,
                                            self.config.task.remove_duplicates)
    return tokens, target, {"asr": asr, "tts": ~asr}
