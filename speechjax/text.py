"""Target symbols of the text fields of a record: the one rule shared by the input pipeline
(`speechjax.data.vocab`, whose tf.data twin is `split_symbols`), CTC scoring and the AudioPaLM vocabulary.

    phones       space-separated phone symbols → one symbol per phone
    transcript   characters of the lower-cased transcript, word boundaries as "|" (fairseq `.ltr`)
    speaker      the speaker id as one symbol
"""
from __future__ import annotations

from speechjax.config import require

BLANK = "<blank>"
WORD_BOUNDARY = "|"
FIELDS = ("phones", "transcript", "speaker")


def check_field(field: str) -> None:
  require(field in FIELDS, "data.targets", field, f"expected one of {FIELDS}")


def symbols_of(field: str, text: str) -> list[str]:
  """The symbols of `text`, a value of the record field `field`."""
  check_field(field)
  if field == "phones":
    return text.split()
  if field == "speaker":
    return [text]
  return [WORD_BOUNDARY if c == " " else c for c in text.strip().lower()]
