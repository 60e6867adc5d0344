"""vq-wav2vec → `speechjax tokenize` → BERT: ids of the micro corpus from a (random-weight) tiny vq-wav2vec,
written as token records (+ `.km`); a tiny BERT trained on them by the trainer: its masked-token loss falls,
and its checkpoint gives features."""
import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

import speechjax
from speechjax import config
from speechjax.cluster import tokenize
from speechjax.data import labels, records
from speechjax.tasks import get_task
from speechjax.train import trainer

from tests.helpers import harness


def _tokenizer():
  cfg = config.load(f"{harness.REPO}/configs/vq_wav2vec.py:tiny", [])
  model = get_task(cfg).model
  params = nn.unbox(jax.jit(model.init)(jax.random.PRNGKey(0), jnp.zeros((1, 16000)), jnp.ones((1, 16000), bool)))[
      "params"]
  return tokenize.vq_wav2vec_tokenizer(cfg, model, params)


def test_combine_codes_is_a_mixed_radix_number():
  codes = np.array([[[0, 0], [0, 31], [1, 0], [31, 31]]])
  np.testing.assert_array_equal(tokenize.combine_codes(codes, 32), [[0, 31, 32, 1023]])


def test_tokenized_ids_train_a_masked_token_bert(synth_records, tmp_path):
  tokenizer = _tokenizer()
  assert tokenizer.vocab_size == 1024 and tokenizer.rate == 100 and tokenizer.streams == ("km",)
  by_split = {split: tokenize.tokenize_split(synth_records, split, tokenizer)
              for split in records.read_meta(synth_records).splits}
  out = str(tmp_path / "tokens")
  tokenize.write(synth_records, out, tokenizer, by_split, {"model": "vq-wav2vec"})
  uids, sequences = by_split["train"]
  assert open(f"{out}/train.ids").read().split() == uids
  read = labels.read_km(f"{out}/train.km")
  assert [len(s) for s in read] == [len(s) for s in sequences] and all(len(s) > 50 for s in read)
  np.testing.assert_array_equal(read[0], sequences[0][:, 0])
  meta = records.read_meta(out)
  assert meta.labels["km"].num_classes == 1024 and meta.labels["km"].frame_rate == 100
  print(f"{len(uids)} utterances, {sum(map(len, read))} ids, {len(np.unique(np.concatenate(read)))} distinct")

  cfg = config.load(f"{harness.REPO}/configs/vq_wav2vec_bert.py:tiny", [
      f"--config.data.path={out}", "--config.train.num_steps=80", "--config.train.log_every=1",
      "--config.checkpoint.save_every=80", "--config.data.min_sample_size=0"])
  trainer.train(cfg, str(tmp_path / "bert"))                 # through the trainer, on the token records
  rows = harness.read_metrics(str(tmp_path / "bert"))
  first, last = (float(np.mean([rows[s]["train/loss"] for s in window])) for window in (range(1, 6), range(76, 81)))
  print(f"masked-token loss {first:.3f} -> {last:.3f} (ln 1024 = {np.log(1024):.3f})")
  assert last < first - 0.5, (first, last)
  _, model, params = speechjax.load(str(tmp_path / "bert"))   # features for downstream use
  features = model.apply({"params": params}, jnp.asarray(read[0][None, :64]), jnp.ones((1, 64), bool))
  assert features["last_hidden_state"].shape == (1, 64, cfg.model.hidden_size)
