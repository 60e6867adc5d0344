"""Subword tokenizers (speechjax.text_tokenizer, `speechjax bpe`): a BPE trained on the corpus transcripts,
checked against transformers' tokenizer on the same file, and its ids as pipeline targets and LLM text."""
import json
import shutil

import numpy as np
import pytest

from speechjax import cli
from speechjax import config as config_lib
from speechjax.data import pipeline, vocab
from speechjax.text_tokenizer import TextTokenizer, train_bpe
from speechjax.train import trainer

from tests.helpers import harness


@pytest.fixture(scope="module")
def bpe(synth_records, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("bpe") / "bpe.json")
  assert cli.main(["bpe", "--data", synth_records, "--vocab-size", "120", "--out", path]) == 0
  return path


def test_bpe_round_trips_every_transcript_and_is_deterministic(bpe, synth_records, tmp_path):
  texts = vocab.read_field(synth_records, "train", "transcript")
  tokenizer = TextTokenizer.load(bpe)
  assert tokenizer.vocab_size == 120 and (tokenizer.bos_id, tokenizer.eos_id) == (1, 2)
  lengths = []
  for text in texts:
    ids = tokenizer.encode(text)
    lengths.append(len(ids))
    assert tokenizer.decode(ids) == text and min(ids) > 3   # no <unk>, no specials
  assert np.mean(lengths) < 0.6 * np.mean([len(t) for t in texts])   # subwords, not characters
  again = train_bpe(texts, 120, str(tmp_path / "again.json"))
  assert again.tokenizer.get_vocab() == tokenizer.tokenizer.get_vocab()


def test_ids_match_transformers_fast_tokenizer_on_the_same_files(bpe, synth_records, tmp_path):
  transformers = pytest.importorskip("transformers")
  directory = tmp_path / "ckpt"
  directory.mkdir()
  shutil.copy(bpe, directory / "tokenizer.json")
  (directory / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<s>", "eos_token": "</s>"}))
  ours = TextTokenizer.load(str(directory))
  theirs = transformers.PreTrainedTokenizerFast(tokenizer_file=str(directory / "tokenizer.json"),
                                                bos_token="<s>", eos_token="</s>")
  for text in vocab.read_field(synth_records, "test", "transcript"):
    assert ours.encode(text) == theirs.encode(text, add_special_tokens=False)
  assert (ours.bos_id, ours.eos_id) == (theirs.bos_token_id, theirs.eos_token_id)


def test_pipeline_targets_are_subword_ids_and_a_text_lm_trains_on_them(bpe, synth_records, tmp_path):
  cfg = config_lib.load(f"{harness.REPO}/configs/llama.py:tiny", [
      f"--config.data.path={synth_records}", f"--config.data.text_tokenizer={bpe}",
      "--config.data.max_target_length=64", "--config.data.batch_size=4", "--config.train.num_steps=20",
      "--config.optim.warmup_steps=5", "--config.train.log_every=10", "--config.train.eval_every=0",
      "--config.checkpoint.save_every=20", "--config.checkpoint.async_save=False"])
  tokenizer = TextTokenizer.load(bpe)
  texts = dict(zip(vocab.read_field(synth_records, "test", "id"),
                   vocab.read_field(synth_records, "test", "transcript")))
  batch = next(iter(pipeline.from_config(cfg.data, train=False)))
  for i, utt in enumerate(batch["id"]):
    if batch["targets_mask"][i].any():
      assert list(batch["targets"][i][batch["targets_mask"][i]]) == tokenizer.encode(texts[utt.decode()])
  trainer.train(cfg, str(tmp_path / "lm"))
  rows = harness.read_metrics(str(tmp_path / "lm"))
  assert rows[20]["train/loss"] < rows[10]["train/loss"]
