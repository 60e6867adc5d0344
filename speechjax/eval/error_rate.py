"""Word, character and phone error rates from a Levenshtein alignment.

`edit_distance(ref, hyp)` aligns two token sequences with the minimum number of edits and splits them
into substitutions S, deletions D (reference tokens missing from the hypothesis) and insertions I.
The total S + D + I is the Levenshtein distance; when several minimal alignments exist the split is
fixed by one convention: common leading and trailing tokens are aligned first, then the middle is
traced back from its end preferring, at each step, a deletion, then a substitution, then an
insertion, then a hit. That is the tie-breaking of rapidfuzz's `Levenshtein.editops`, which jiwer uses,
so the counts equal jiwer's `process_words` (tests check this on random sentence pairs).

Error rates are corpus-level: total errors over total reference tokens, (S + D + I) / N, so long
utterances weigh more than short ones (like jiwer and sclite, not a mean of per-sentence rates).

Tokenization:
  * `wer`: words = the string split on whitespace.
  * `cer`: characters of the string with leading/trailing whitespace stripped; inner spaces count as
    characters and are not collapsed (jiwer's default `cer` transform).
  * `per`: phones = a sequence of symbols, or a string split on whitespace.

Empty references: a reference with no tokens contributes its hypothesis tokens as insertions and
nothing to N. If the whole corpus has N = 0 the rate is errors / max(N, 1), i.e. 0.0 when the
hypotheses are empty too and the number of inserted tokens otherwise (what jiwer 4 returns).
"""
from __future__ import annotations

import dataclasses
from typing import Hashable, Sequence, Union

import numpy as np

Text = Union[str, Sequence[str]]


def _distance_matrix(ref_ids: np.ndarray, hyp_ids: np.ndarray) -> np.ndarray:
  """Levenshtein DP table `[len(ref)+1, len(hyp)+1]`: cell (i, j) = distance of ref[:i] to hyp[:j]."""
  n, m = len(ref_ids), len(hyp_ids)
  table = np.empty((n + 1, m + 1), np.int32)
  cols = np.arange(m + 1, dtype=np.int32)
  table[0] = cols
  for i in range(1, n + 1):
    prev = table[i - 1]
    # Deletion (from above) or substitution/hit (diagonal), then insertions along the row:
    # row[j] = min_k<=j (best[k] + j - k), a running minimum of best - j.
    best = np.empty(m + 1, np.int32)
    best[0] = i
    best[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (hyp_ids != ref_ids[i - 1]))
    table[i] = np.minimum.accumulate(best - cols) + cols
  return table


def edit_distance(ref: Sequence[Hashable], hyp: Sequence[Hashable]) -> tuple[int, int, int]:
  """Minimal alignment of `hyp` to `ref` as `(substitutions, deletions, insertions)`.

  Args:
    ref: reference tokens (any hashables: words, characters, phone symbols, ids).
    hyp: hypothesis tokens.

  Returns:
    Counts whose sum is the Levenshtein distance; the split among them follows the convention in the
    module docstring. O(len(ref) * len(hyp)) time and memory.
  """
  ref, hyp = list(ref), list(hyp)
  start = 0
  while start < min(len(ref), len(hyp)) and ref[start] == hyp[start]:
    start += 1
  end_r, end_h = len(ref), len(hyp)
  while end_r > start and end_h > start and ref[end_r - 1] == hyp[end_h - 1]:
    end_r, end_h = end_r - 1, end_h - 1
  ref, hyp = ref[start:end_r], hyp[start:end_h]
  if not ref or not hyp:
    return 0, len(ref), len(hyp)
  vocab: dict = {}
  ref_ids = np.array([vocab.setdefault(t, len(vocab)) for t in ref], np.int64)
  hyp_ids = np.array([vocab.setdefault(t, len(vocab)) for t in hyp], np.int64)
  table = _distance_matrix(ref_ids, hyp_ids)
  i, j = len(ref), len(hyp)
  subs = dels = ins = 0
  while i > 0 and j > 0:
    cost = table[i, j]
    if cost == table[i - 1, j] + 1:
      dels, i = dels + 1, i - 1
    elif ref_ids[i - 1] != hyp_ids[j - 1] and cost == table[i - 1, j - 1] + 1:
      subs, i, j = subs + 1, i - 1, j - 1
    elif cost == table[i, j - 1] + 1:
      ins, j = ins + 1, j - 1
    else:  # a hit
      i, j = i - 1, j - 1
  return subs, dels + i, ins + j


@dataclasses.dataclass(frozen=True)
class EditCounts:
  """Corpus totals of an alignment: errors by kind and the number of reference tokens."""
  substitutions: int = 0
  deletions: int = 0
  insertions: int = 0
  reference_tokens: int = 0
  utterances: int = 0

  @property
  def errors(self) -> int:
    return self.substitutions + self.deletions + self.insertions

  @property
  def hits(self) -> int:
    return self.reference_tokens - self.substitutions - self.deletions

  @property
  def rate(self) -> float:
    """(S + D + I) / N, with N clamped to 1 for an empty reference corpus (see module docstring)."""
    return self.errors / max(self.reference_tokens, 1)

  def __add__(self, other: "EditCounts") -> "EditCounts":
    return EditCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


class ErrorRate:
  """Accumulates alignment counts over utterances; `.rate` is the corpus-level error rate.

    er = ErrorRate()
    for ref, hyp in pairs:
      er.add(ref.split(), hyp.split())
    er.rate, er.counts.substitutions
  """

  def __init__(self):
    self._counts = EditCounts()

  def add(self, ref_tokens: Sequence[Hashable], hyp_tokens: Sequence[Hashable]) -> tuple[int, int, int]:
    """Aligns one utterance, adds its counts, and returns its `(S, D, I)`."""
    s, d, i = edit_distance(ref_tokens, hyp_tokens)
    self._counts += EditCounts(s, d, i, len(ref_tokens), 1)
    return s, d, i

  @property
  def counts(self) -> EditCounts:
    return self._counts

  @property
  def rate(self) -> float:
    return self._counts.rate


def _pairs(refs: Text, hyps: Text, name: str) -> tuple[list, list]:
  if isinstance(refs, str) != isinstance(hyps, str):
    raise ValueError(f"{name}: pass two strings or two lists of strings, got {type(refs).__name__} and "
                     f"{type(hyps).__name__}")
  if isinstance(refs, str):
    return [refs], [hyps]
  refs, hyps = list(refs), list(hyps)
  if len(refs) != len(hyps):
    raise ValueError(f"{name}: {len(refs)} references but {len(hyps)} hypotheses")
  return refs, hyps


def _rate(refs, hyps, tokenize, name: str) -> float:
  er = ErrorRate()
  for ref, hyp in zip(*_pairs(refs, hyps, name)):
    er.add(tokenize(ref), tokenize(hyp))
  return er.rate


def wer(refs: Text, hyps: Text) -> float:
  """Word error rate of hypothesis strings against reference strings (one string or lists of them)."""
  return _rate(refs, hyps, str.split, "wer")


def cer(refs: Text, hyps: Text) -> float:
  """Character error rate; spaces inside a string are characters, the ends are stripped."""
  return _rate(refs, hyps, lambda s: list(s.strip()), "cer")


def _phones(x: Union[str, Sequence[str]]) -> list:
  return x.split() if isinstance(x, str) else list(x)


def per(refs: Sequence[Union[str, Sequence[str]]], hyps: Sequence[Union[str, Sequence[str]]]) -> float:
  """Phone error rate over utterances, each a list of phone symbols or a space-separated string."""
  refs, hyps = list(refs), list(hyps)
  if len(refs) != len(hyps):
    raise ValueError(f"per: {len(refs)} references but {len(hyps)} hypotheses")
  er = ErrorRate()
  for ref, hyp in zip(refs, hyps):
    er.add(_phones(ref), _phones(hyp))
  return er.rate
