"""Token vocabularies for CTC targets, from the text fields of prepared records.

Two target kinds (fairseq's fine-tuning conventions):
    phones       space-separated phone symbols → one token per phone
    transcript   characters of the lower-cased transcript, word boundaries as "|" (fairseq `.ltr`)
    speaker      the speaker id as one symbol (utterance-level classification: max_target_length 1)

Token ids are 1-based positions in the symbol list; id 0 is reserved for the CTC blank (and padding).
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf

from speechjax.data import records
from speechjax.text import WORD_BOUNDARY, check_field, symbols_of


def split_symbols(field: str, text):
  """tf string scalar → tf string [n] of target symbols (tf.data twin of `speechjax.text.symbols_of`)."""
  if field == "phones":
    return tf.strings.split(text)
  if field == "speaker":
    return tf.reshape(text, [1])
  chars = tf.strings.unicode_split(tf.strings.lower(tf.strings.strip(text)), "UTF-8")
  return tf.where(chars == " ", WORD_BOUNDARY, chars)


def read_field(data_dir: str, split: str, field: str) -> list[str]:
  """One text field of every record of a split, in shard order (reads only that field)."""
  meta = records.read_meta(data_dir)
  files = records.split_files(data_dir, meta, split)
  spec = {field: tf.io.FixedLenFeature([], tf.string, default_value="")}
  ds = tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, spec)[field])
  return [text.decode("utf-8") for text in ds.as_numpy_iterator()]


def scan(data_dir: str, split: str, field: str) -> list[str]:
  """Sorted symbols of `field` over a split."""
  check_field(field)
  found = set()
  for text in read_field(data_dir, split, field):
    found.update(symbols_of(field, text))
  if not found:
    raise ValueError(f"data.targets={field!r}: split {split!r} of {data_dir} has no {field}")
  return sorted(found)


def resolve(data_cfg) -> None:
  """Fills `data.target_vocab` from the train split when empty (in place); a saved config keeps its own.
  With `data.text_tokenizer` the targets are subword ids: no symbols to scan."""
  check_field(data_cfg.targets)
  if data_cfg.get("text_tokenizer"):
    if data_cfg.targets != "transcript":
      raise ValueError(f"data.text_tokenizer needs data.targets='transcript' (is {data_cfg.targets!r})")
    return
  if not data_cfg.target_vocab:
    data_cfg.target_vocab = tuple(scan(data_cfg.path, data_cfg.train_split, data_cfg.targets))


class TargetTokenizer:
  """tf.data map fn: text scalar → int32 [n] ids (1-based; 0 for symbols not in the vocabulary)."""

  def __init__(self, field: str, symbols):
    check_field(field)
    if not symbols:
      raise ValueError("data.target_vocab is empty (the task fills it from the train split)")
    self.field = field
    self.table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(tf.constant(list(symbols)),
                                            tf.range(1, len(symbols) + 1, dtype=tf.int32)),
        default_value=0)

  def __call__(self, text):
    return self.table.lookup(split_symbols(self.field, text))


class SubwordTargets:
  """tf.data map fn: transcript scalar → int32 [n] ids of a `speechjax.text_tokenizer` tokenizer.json (no
  special tokens; the tokenizer runs on the host through `tf.py_function`)."""

  def __init__(self, path: str):
    from speechjax.text_tokenizer import TextTokenizer   # pylint: disable=import-outside-toplevel
    self.tokenizer = TextTokenizer.load(path)

  def __call__(self, text):
    ids = tf.py_function(lambda t: np.asarray(self.tokenizer.encode(t.numpy().decode("utf-8")), np.int32),
                         [text], tf.int32)
    ids.set_shape([None])
    return ids


def decode(ids, symbols) -> list[str]:
  """1-based ids (blanks/padding 0 dropped) → symbols."""
  return [symbols[i - 1] for i in ids if i > 0]
