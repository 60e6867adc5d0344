"""CTC decoding: greedy (best path) and prefix beam search with an optional language model.

A CTC model emits per frame a distribution over the vocabulary plus a blank (index `blank`, 0 in
fairseq's dictionaries). A frame path maps to a labelling by collapsing repeated tokens and then dropping
blanks ("a a - a b b" → "a a b"), and P(labelling | x) sums the probability of every path that maps to it.

* `greedy_decode` / `greedy_ids`: collapse the per-frame argmax path (the most probable *path*, which is
  not always the most probable labelling).
* `prefix_beam_search`: keeps the `beam_size` best labelling prefixes ℓ, each with two acoustic
  log-probabilities over the frames seen so far: p_b(ℓ) (paths ending in blank) and p_nb(ℓ) (paths
  ending in ℓ's last token). At frame t with log-probs y:
      p_b(ℓ)      ← [p_b(ℓ) + p_nb(ℓ)] · y[blank]
      p_nb(ℓ)     ← p_nb(ℓ) · y[last(ℓ)]                           (the last token repeated)
      p_nb(ℓ + c) ← p_b(ℓ) · y[c]                   if c == last(ℓ) (a repeat needs a blank between)
                    [p_b(ℓ) + p_nb(ℓ)] · y[c]       otherwise
  (in log space, vectorised over the candidate tokens c of all beams). Beams are ranked by
      score(ℓ) = log(p_b(ℓ) + p_nb(ℓ)) + lm_weight · LM(ℓ) + insertion_bonus · |ℓ|,
  where the LM and length terms are kept apart from the acoustic probabilities, so with no LM and no
  bonus the score of a surviving prefix is its CTC log-probability log P(ℓ | x) over all alignments the
  search kept (exact when nothing was pruned: the same number as `-optax.ctc_loss`).

Language-model hook. `lm` is any object with `score(prefix, token) -> float`, the log-probability of
`token` following the token tuple `prefix`:
  * character (token) level, `word_boundary=None`: called for every extension ℓ → ℓ + c, so LM(ℓ) is
    Σ_i log P(ℓ_i | ℓ_<i) and |ℓ| counts tokens. If the object also has `score_all(prefix) -> [vocab]`
    (all next-token log-probs at once, like `CharNgramLM`), the search uses it instead.
  * word level, `word_boundary=b` (e.g. the id of "|"): called only when a token b extends a prefix that
    is non-empty and does not already end in b, i.e. when a word is completed; the LM reads the word(s)
    from `prefix` itself. |ℓ| then counts completed words, and at the end of the utterance a prefix that
    stops inside a word is scored once more as `score(ℓ, b)` (plus the bonus) to complete its last word.
The LM is called at most once per (prefix, token) within an utterance (results are cached).
"""
from __future__ import annotations

import json
import math
from typing import Iterable, Optional, Protocol, Sequence

import jax.numpy as jnp
import numpy as np

NEG_INF = -np.inf


class LanguageModel(Protocol):
  def score(self, prefix: tuple[int, ...], token: int) -> float:
    """log P(token | prefix)."""


def _collapse(ids: np.ndarray, blank: int) -> list[int]:
  keep = np.ones(ids.shape, bool)
  keep[1:] = ids[1:] != ids[:-1]
  return ids[keep & (ids != blank)].tolist()


def greedy_decode(logits, lengths=None, blank: int = 0) -> list[list[int]]:
  """Best-path decoding of a batch.

  Args:
    logits: `[batch, frames, vocab]` logits or log-probs (numpy or jax; only the argmax matters).
    lengths: `[batch]` number of valid frames per row (None: all frames).
    blank: the blank index.

  Returns:
    One token-id list per row: the per-frame argmax with repeats collapsed and blanks removed.
  """
  if logits.ndim != 3:
    raise ValueError(f"greedy_decode: logits must be [batch, frames, vocab], got shape {logits.shape}")
  ids = np.asarray(logits.argmax(-1))
  batch, frames = ids.shape
  lengths = np.full(batch, frames) if lengths is None else np.asarray(lengths)
  if lengths.shape != (batch,) or (lengths > frames).any() or (lengths < 0).any():
    raise ValueError(f"greedy_decode: lengths must be [batch] in [0, {frames}], got {lengths!r}")
  return [_collapse(ids[b, :lengths[b]], blank) for b in range(batch)]


def greedy_ids(logits: jnp.ndarray, mask: jnp.ndarray, blank: int = 0):
  """Jittable best-path decoding.

  Args:
    logits: `[batch, frames, vocab]`.
    mask: `[batch, frames]` bool, True on valid frames (a prefix of each row).
    blank: the blank index.

  Returns:
    `ids [batch, frames]` int32: the decoded tokens left-aligned, -1 after them; and
    `counts [batch]` int32: the number of decoded tokens per row.
  """
  ids = jnp.argmax(logits, axis=-1).astype(jnp.int32)
  prev = jnp.pad(ids[:, :-1], ((0, 0), (1, 0)), constant_values=-1)
  keep = mask & (ids != prev) & (ids != blank)
  frames = ids.shape[1]
  target = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, frames)  # out-of-range slots are dropped
  rows = jnp.arange(ids.shape[0])[:, None]
  out = jnp.full_like(ids, -1).at[rows, target].set(ids, mode="drop")
  return out, keep.sum(axis=1).astype(jnp.int32)


class _Extras:
  """Cached LM + insertion-bonus increments of extending a prefix, for one utterance."""

  def __init__(self, lm, lm_weight, insertion_bonus, word_boundary, vocab):
    self.lm, self.lm_weight, self.bonus = lm, lm_weight, insertion_bonus
    self.boundary, self.vocab = word_boundary, vocab
    self.score_all = getattr(lm, "score_all", None) if word_boundary is None else None
    self._cache: dict = {}

  @property
  def active(self) -> bool:
    return self.uses_lm or self.bonus != 0

  @property
  def uses_lm(self) -> bool:
    return self.lm is not None and self.lm_weight != 0

  def _lm(self, prefix, token) -> float:
    return self.lm_weight * float(self.lm.score(prefix, token)) if self.uses_lm else 0.0

  def completes_word(self, prefix) -> bool:
    return bool(prefix) and prefix[-1] != self.boundary

  def extend(self, prefix: tuple, tokens: np.ndarray) -> np.ndarray:
    """`[len(tokens)]` increments of the ranking score for prefix → prefix + (token,)."""
    if self.boundary is not None:  # word level: only a completed word is scored
      out = np.zeros(len(tokens))
      if self.completes_word(prefix):
        key = (prefix, self.boundary)
        if key not in self._cache:
          self._cache[key] = self._lm(prefix, self.boundary) + self.bonus
        out[tokens == self.boundary] = self._cache[key]
      return out
    row = self._cache.get(prefix)
    if row is None:
      if not self.uses_lm:
        row = np.full(self.vocab, self.bonus, np.float64)
      elif self.score_all is not None:
        row = self.lm_weight * np.asarray(self.score_all(prefix), np.float64) + self.bonus
      else:
        row = np.full(self.vocab, np.nan)
      self._cache[prefix] = row
    missing = tokens[np.isnan(row[tokens])]
    for c in missing.tolist():
      row[c] = self._lm(prefix, c) + self.bonus
    return row[tokens]

  def finish(self, prefix: tuple) -> float:
    """Score added at the end of the utterance (word level: completing an unfinished last word)."""
    if self.boundary is None or not self.completes_word(prefix):
      return 0.0
    return float(self.extend(prefix, np.array([self.boundary]))[0])


def prefix_beam_search(log_probs, length: Optional[int] = None, beam_size: int = 8, blank: int = 0,
                       lm: Optional[LanguageModel] = None, lm_weight: float = 0.0,
                       insertion_bonus: float = 0.0, word_boundary: Optional[int] = None,
                       token_prune: Optional[int] = None) -> list[tuple[tuple[int, ...], float]]:
  """CTC prefix beam search over one utterance (see the module docstring for the recursion and scores).

  Args:
    log_probs: `[frames, vocab]` per-frame log-probabilities (log-softmax outputs, not raw logits).
    length: number of valid frames (None: all).
    beam_size: prefixes kept after each frame.
    blank: the blank index.
    lm: optional language model with `score(prefix, token) -> log-prob` (see "Language-model hook").
    lm_weight: weight α of the LM log-probability in the ranking score.
    insertion_bonus: β added per token (per completed word with `word_boundary`).
    word_boundary: token id that ends a word; if set, the LM is applied at word ends only.
    token_prune: if set, only the `token_prune` most probable non-blank tokens of each frame may extend
      a prefix (blank and repeats of a prefix's own last token are always scored).

  Returns:
    Up to `beam_size` `(token tuple, score)` pairs, best first. `score` is the ranking score: the CTC
    log-probability of the labelling plus the LM and bonus terms.
  """
  log_probs = np.asarray(log_probs, np.float64)
  if log_probs.ndim != 2:
    raise ValueError(f"prefix_beam_search: log_probs must be [frames, vocab], got {log_probs.shape}")
  if beam_size < 1:
    raise ValueError(f"prefix_beam_search: beam_size must be >= 1, got {beam_size}")
  frames, vocab = log_probs.shape
  if length is not None:
    if not 0 <= length <= frames:
      raise ValueError(f"prefix_beam_search: length {length} outside [0, {frames}]")
    log_probs = log_probs[:int(length)]
  if not 0 <= blank < vocab:
    raise ValueError(f"prefix_beam_search: blank {blank} outside the vocabulary of {vocab}")
  extras = _Extras(lm, lm_weight, insertion_bonus, word_boundary, vocab)
  nonblank = np.array([c for c in range(vocab) if c != blank], np.int64)
  prune = token_prune is not None and 0 < token_prune < len(nonblank)

  prefixes: list[tuple[int, ...]] = [()]
  p_b, p_nb, extra = np.zeros(1), np.full(1, NEG_INF), np.zeros(1)
  for y in log_probs:
    tokens = nonblank
    if prune:
      tokens = np.sort(nonblank[np.argpartition(-y[nonblank], token_prune - 1)[:token_prune]])
    total = np.logaddexp(p_b, p_nb)
    last = np.array([p[-1] if p else -1 for p in prefixes])
    # Staying on the same prefix.
    stay_b = total + y[blank]
    stay_nb = np.where(last >= 0, p_nb + y[np.maximum(last, 0)], NEG_INF)
    # Extending prefix b by token k: [beams, tokens].
    ext = np.where(tokens[None, :] == last[:, None], p_b[:, None], total[:, None]) + y[tokens][None, :]
    if extras.active:
      ext_extra = extra[:, None] + np.stack([extras.extend(p, tokens) for p in prefixes])
    else:
      ext_extra = np.zeros_like(ext)
    # An extension that equals a prefix already in the beam merges into that prefix's p_nb.
    index = {p: i for i, p in enumerate(prefixes)}
    token_pos = {int(c): k for k, c in enumerate(tokens)}
    for i, p in enumerate(prefixes):
      if p and p[:-1] in index and p[-1] in token_pos:
        b, k = index[p[:-1]], token_pos[p[-1]]
        stay_nb[i] = np.logaddexp(stay_nb[i], ext[b, k])
        ext[b, k] = NEG_INF
    stay_score = np.logaddexp(stay_b, stay_nb) + extra
    ext_score = (ext + ext_extra).ravel()
    scores = np.concatenate([stay_score, ext_score])
    keep = min(beam_size, np.count_nonzero(scores > NEG_INF))
    if keep == 0:
      raise ValueError("prefix_beam_search: every labelling has probability 0 (log_probs all -inf?)")
    best = np.argpartition(-scores, keep - 1)[:keep] if keep < len(scores) else np.arange(len(scores))
    best = best[scores[best] > NEG_INF]
    n = len(prefixes)
    new_prefixes, new_b, new_nb, new_extra = [], [], [], []
    for j in best.tolist():
      if j < n:
        new_prefixes.append(prefixes[j])
        new_b.append(stay_b[j])
        new_nb.append(stay_nb[j])
        new_extra.append(extra[j])
      else:
        b, k = divmod(j - n, len(tokens))
        new_prefixes.append(prefixes[b] + (int(tokens[k]),))
        new_b.append(NEG_INF)
        new_nb.append(ext[b, k])
        new_extra.append(ext_extra[b, k])
    prefixes = new_prefixes
    p_b, p_nb, extra = np.array(new_b), np.array(new_nb), np.array(new_extra)

  final = np.logaddexp(p_b, p_nb) + extra + np.array([extras.finish(p) for p in prefixes])
  order = np.argsort(-final, kind="stable")
  return [(prefixes[i], float(final[i])) for i in order.tolist()]


def beam_search_batch(log_probs, lengths=None, **kwargs) -> list[list[int]]:
  """Best labelling of each row of `[batch, frames, vocab]` log-probs (`prefix_beam_search` kwargs)."""
  log_probs = np.asarray(log_probs)
  if log_probs.ndim != 3:
    raise ValueError(f"beam_search_batch: log_probs must be [batch, frames, vocab], got "
                     f"{log_probs.shape}")
  lengths = [None] * len(log_probs) if lengths is None else np.asarray(lengths).tolist()
  return [list(prefix_beam_search(lp, length, **kwargs)[0][0])
          for lp, length in zip(log_probs, lengths)]


class CharNgramLM:
  """Token n-gram language model with add-k smoothing, for shallow fusion in `prefix_beam_search`.

  P(c | h) = (count(h, c) + k) / (count(h) + k · vocab_size), where h is the last `order - 1` tokens
  of the prefix, padded on the left with a sentence-start symbol (-1) at the start of a sentence.
  There is no end-of-sentence token, so `log_prob` is the probability of the tokens given that the
  sentence has that length. Tokens are ids in [0, vocab_size) (the CTC blank may be among them; it
  never occurs in training text and so only receives smoothing mass).
  """

  START = -1

  def __init__(self, order: int, vocab_size: int, add_k: float = 0.1):
    if order < 1 or vocab_size < 1 or not add_k > 0:
      raise ValueError(f"CharNgramLM: need order >= 1, vocab_size >= 1 and add_k > 0, got {order}, "
                       f"{vocab_size}, {add_k}")
    self.order, self.vocab_size, self.add_k = int(order), int(vocab_size), float(add_k)
    self._counts: dict[tuple[int, ...], np.ndarray] = {}
    self._log_probs: dict[tuple[int, ...], np.ndarray] = {}

  def _context(self, prefix: Sequence[int]) -> tuple[int, ...]:
    n = self.order - 1
    if n == 0:
      return ()
    tail = tuple(int(t) for t in prefix[-n:])
    return (self.START,) * (n - len(tail)) + tail

  def fit(self, sequences: Iterable[Sequence[int]]) -> "CharNgramLM":
    """Adds the n-gram counts of `sequences` (each a sequence of token ids); returns self."""
    for seq in sequences:
      seq = [int(t) for t in seq]
      if seq and (min(seq) < 0 or max(seq) >= self.vocab_size):
        raise ValueError(f"CharNgramLM.fit: token ids must be in [0, {self.vocab_size}), got {seq}")
      for i, token in enumerate(seq):
        row = self._counts.get(ctx := self._context(seq[:i]))
        if row is None:
          row = self._counts[ctx] = np.zeros(self.vocab_size, np.int64)
        row[token] += 1
    self._log_probs.clear()
    return self

  def score_all(self, prefix: Sequence[int]) -> np.ndarray:
    """`[vocab_size]` log P(c | prefix) for every token c."""
    ctx = self._context(prefix)
    out = self._log_probs.get(ctx)
    if out is None:
      counts = self._counts.get(ctx, np.zeros(self.vocab_size, np.int64))
      out = np.log(counts + self.add_k) - math.log(counts.sum() + self.add_k * self.vocab_size)
      self._log_probs[ctx] = out
    return out

  def score(self, prefix: Sequence[int], token: int) -> float:
    """log P(token | prefix)."""
    return float(self.score_all(prefix)[token])

  def log_prob(self, sequence: Sequence[int]) -> float:
    """Σ_i log P(sequence[i] | sequence[:i]) from the sentence start."""
    sequence = list(sequence)
    return float(sum(self.score(sequence[:i], t) for i, t in enumerate(sequence)))

  def to_json(self) -> dict:
    counts = [[list(ctx), row.tolist()] for ctx, row in sorted(self._counts.items())]
    return {"type": "CharNgramLM", "order": self.order, "vocab_size": self.vocab_size,
            "add_k": self.add_k, "counts": counts}

  @classmethod
  def from_json(cls, data: dict) -> "CharNgramLM":
    lm = cls(data["order"], data["vocab_size"], data["add_k"])
    for ctx, row in data["counts"]:
      if len(ctx) != lm.order - 1 or len(row) != lm.vocab_size:
        raise ValueError(f"CharNgramLM.from_json: context {ctx} or counts of length {len(row)} do not "
                         f"fit order {lm.order} and vocab_size {lm.vocab_size}")
      lm._counts[tuple(ctx)] = np.asarray(row, np.int64)
    return lm

  def save(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump(self.to_json(), f)

  @classmethod
  def load(cls, path: str) -> "CharNgramLM":
    with open(path) as f:
      return cls.from_json(json.load(f))
