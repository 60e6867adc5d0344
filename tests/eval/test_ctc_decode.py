"""CTC decoding against hand-made logits, brute-force enumeration of alignments, and optax.ctc_loss."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from speechjax.eval import ctc_decode


def _log_softmax(x):
  x = np.asarray(x, np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _collapse(path, blank=0):
  out, prev = [], None
  for t in path:
    if t != prev and t != blank:
      out.append(t)
    prev = t
  return tuple(out)


def _brute_force(log_probs, blank=0):
  """{labelling: log P(labelling | x)} by summing over all vocab**frames frame paths."""
  frames, vocab = log_probs.shape
  paths = np.array(list(itertools.product(range(vocab), repeat=frames)), np.int64).reshape(-1, frames)
  path_lp = log_probs[np.arange(frames), paths].sum(-1)
  totals: dict = {}
  for path, lp in zip(paths.tolist(), path_lp):
    label = _collapse(path, blank)
    totals[label] = np.logaddexp(totals.get(label, -np.inf), lp)
  return totals


def _peaked(rng, frames, vocab, sharpness):
  """Log-probs whose per-frame argmax has probability about 1 - small."""
  logits = rng.normal(size=(frames, vocab))
  logits[np.arange(frames), rng.integers(0, vocab, frames)] += sharpness
  return _log_softmax(logits)


def test_greedy_hand_made():
  path = [[1, 1, 0, 1, 2, 2, 0, 0], [3, 0, 3, 3, 0, 0, 1, 1]]
  logits = np.full((2, 8, 4), -5.0)
  for b, row in enumerate(path):
    logits[b, np.arange(8), row] = 1.0
  assert ctc_decode.greedy_decode(logits, [8, 8]) == [[1, 1, 2], [3, 3, 1]]
  assert ctc_decode.greedy_decode(logits, [4, 3]) == [[1, 1], [3, 3]]
  assert ctc_decode.greedy_decode(jnp.asarray(logits), np.array([0, 8])) == [[], [3, 3, 1]]
  # Blank elsewhere than 0: now token 0 is a label and 3 is the blank.
  assert ctc_decode.greedy_decode(logits, None, blank=3) == [[1, 0, 1, 2, 0], [0, 0, 1]]
  mask = jnp.arange(8)[None, :] < jnp.array([[8], [3]])
  ids, counts = jax.jit(ctc_decode.greedy_ids)(jnp.asarray(logits), mask)
  assert counts.tolist() == [3, 2]
  assert ids.tolist() == [[1, 1, 2, -1, -1, -1, -1, -1], [3, 3, -1, -1, -1, -1, -1, -1]]
  with pytest.raises(ValueError, match="lengths"):
    ctc_decode.greedy_decode(logits, [9, 1])


def test_greedy_ids_matches_greedy_decode():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(6, 30, 5)) * 2
  lengths = rng.integers(0, 31, 6)
  ids, counts = jax.jit(ctc_decode.greedy_ids)(logits, np.arange(30)[None] < lengths[:, None])
  expected = ctc_decode.greedy_decode(logits, lengths)
  assert [row[:n] for row, n in zip(ids.tolist(), counts.tolist())] == expected


def test_beam_finds_best_path_labelling_when_it_dominates():
  # When the best frame path alone has probability > 1/2 its labelling is the most probable one.
  rng = np.random.default_rng(1)
  checked = 0
  for _ in range(20):
    lp = _peaked(rng, 40, 6, sharpness=9.0)
    if lp.max(-1).sum() <= np.log(0.5):
      continue
    greedy = ctc_decode.greedy_decode(lp[None], None)[0]
    for beam in (1, 4, 16):
      assert list(ctc_decode.prefix_beam_search(lp, beam_size=beam)[0][0]) == greedy
    assert list(ctc_decode.prefix_beam_search(lp, beam_size=4, token_prune=2)[0][0]) == greedy
    checked += 1
  assert checked >= 10


def test_matches_brute_force_on_tiny_problems():
  rng = np.random.default_rng(2)
  beam8_exact = 0
  cases = 0
  for frames in range(1, 7):
    for vocab in (2, 3):
      for _ in range(4):
        lp = _log_softmax(rng.normal(size=(frames, vocab)) * 1.5)
        totals = _brute_force(lp)
        best_label = max(totals, key=totals.get)
        # Beam wide enough to keep every prefix: the search is exact for every labelling it returns.
        nbest = ctc_decode.prefix_beam_search(lp, beam_size=1000)
        assert nbest[0][0] == best_label
        assert nbest[0][1] == pytest.approx(totals[best_label], abs=1e-9)
        assert len(nbest) == len(totals)
        for label, score in nbest:
          assert score == pytest.approx(totals[label], abs=1e-9)
        # A narrow beam: at least as probable as greedy's labelling.
        label8 = ctc_decode.prefix_beam_search(lp, beam_size=8)[0][0]
        greedy = tuple(ctc_decode.greedy_decode(lp[None])[0])
        assert totals[label8] >= totals[greedy] - 1e-12
        beam8_exact += label8 == best_label
        cases += 1
  assert beam8_exact >= cases - 2


def test_scores_agree_with_optax_ctc_loss():
  optax = pytest.importorskip("optax")
  rng = np.random.default_rng(3)
  frames, vocab, top = 40, 6, 4
  lp = _peaked(rng, frames, vocab, sharpness=6.0)
  logits = np.broadcast_to(lp.astype(np.float32), (top, frames, vocab))
  ctc_loss = jax.jit(optax.ctc_loss)

  def exact(nbest):
    labels = np.zeros((top, frames), np.int32)  # one padded shape: one compile
    label_pad = np.ones((top, frames), np.float32)
    for i, (label, _) in enumerate(nbest):
      labels[i, :len(label)] = label
      label_pad[i, :len(label)] = 0
    return -np.asarray(ctc_loss(logits, np.zeros((top, frames), np.float32), labels, label_pad),
                       np.float64)

  gaps = []
  for beam in (8, 32, 512):
    nbest = ctc_decode.prefix_beam_search(lp, beam_size=beam)[:top]
    gap = np.array([score for _, score in nbest]) - exact(nbest)
    # Pruned alignments only remove probability: the search's score is a lower bound.
    assert (gap <= 1e-4).all(), (beam, gap)
    gaps.append(np.abs(gap).max())
  assert gaps[-1] < 2e-4, gaps  # wide beam: the labelling's full CTC probability
  assert gaps[0] > gaps[-1]


class _PreferToken:
  """Character LM that gives `token` log-prob 0 and everything else `penalty`."""

  def __init__(self, token, penalty=-5.0):
    self.token, self.penalty, self.calls = token, penalty, []

  def score(self, prefix, token):
    self.calls.append((prefix, token))
    return 0.0 if token == self.token else self.penalty


def test_character_lm_changes_the_result():
  # One non-blank frame between blanks: token 1 at 0.5, token 2 at 0.4.
  probs = np.array([[0.9, 0.05, 0.05], [0.05, 0.5, 0.45], [0.9, 0.05, 0.05]])
  lp = np.log(probs)
  assert ctc_decode.prefix_beam_search(lp)[0][0] == (1,)
  lm = _PreferToken(2)
  best, score = ctc_decode.prefix_beam_search(lp, lm=lm, lm_weight=1.0)[0]
  assert best == (2,)
  acoustic = _brute_force(lp)[(2,)]
  assert score == pytest.approx(acoustic + 0.0)
  # The LM weight scales the LM term; a zero weight leaves the acoustic decision.
  assert ctc_decode.prefix_beam_search(lp, lm=lm, lm_weight=0.0)[0][0] == (1,)
  # Insertion bonus: a large negative bonus makes the empty labelling win.
  assert ctc_decode.prefix_beam_search(lp, insertion_bonus=-10.0)[0][0] == ()


def test_word_level_lm_hook():
  blank, bar, a, b = 0, 1, 2, 3

  class WordLM:
    """Likes the word "b" and dislikes every other word; records the calls."""

    def __init__(self):
      self.calls = []

    def score(self, prefix, token):
      self.calls.append((prefix, token))
      word = prefix[len(prefix) - prefix[::-1].index(bar):] if bar in prefix else prefix
      return 0.0 if word == (b,) else -6.0

  # Acoustically "a |" (0.6) beats "b |" (0.4); the LM flips it. Without a trailing "|" the last word
  # is scored at the end of the utterance.
  frame_ab = [0.0, 0.0, 0.6, 0.4]
  frame_bar = [0.0, 1.0, 0.0, 0.0]
  for trailing_bar in (True, False):
    rows = [frame_ab, frame_bar] if trailing_bar else [frame_ab]
    lp = np.log(np.array(rows) + 1e-9)
    expected_plain = (a, bar) if trailing_bar else (a,)
    assert ctc_decode.prefix_beam_search(lp)[0][0] == expected_plain
    lm = WordLM()
    best, _ = ctc_decode.prefix_beam_search(lp, lm=lm, lm_weight=1.0, word_boundary=bar)[0]
    assert best == ((b, bar) if trailing_bar else (b,))
    assert lm.calls and all(token == bar and prefix and prefix[-1] != bar for prefix, token in lm.calls)
    assert len(lm.calls) == len(set(lm.calls))  # cached


def test_beam_search_batch_and_lengths():
  rng = np.random.default_rng(4)
  lp = np.stack([_peaked(rng, 20, 5, 4.0) for _ in range(3)])
  lengths = [20, 11, 0]
  out = ctc_decode.beam_search_batch(lp, lengths, beam_size=4)
  for row, n, labels in zip(lp, lengths, out):
    assert labels == list(ctc_decode.prefix_beam_search(row[:n], beam_size=4)[0][0])
  assert out[2] == []
  with pytest.raises(ValueError, match="length"):
    ctc_decode.prefix_beam_search(lp[0], length=21)


def test_char_ngram_lm(tmp_path):
  corpus = [[1, 2, 3, 1, 2, 3], [1, 2, 3], [2, 3, 1]]
  lm = ctc_decode.CharNgramLM(order=3, vocab_size=5, add_k=0.5).fit(corpus)
  # Add-k by hand: after the start context (-1, -1) the counts are {1: 2, 2: 1}, total 3.
  assert lm.score([], 1) == pytest.approx(np.log((2 + 0.5) / (3 + 0.5 * 5)))
  assert lm.score([], 4) == pytest.approx(np.log(0.5 / 5.5))
  # Context (1, 2) is always followed by 3 (3 times).
  assert lm.score([1, 2], 3) == pytest.approx(np.log(3.5 / 5.5))
  # Unseen context: uniform.
  assert lm.score([4, 4], 0) == pytest.approx(np.log(1 / 5))
  for prefix in ([], [1], [1, 2], [3, 3, 3]):
    assert np.exp(lm.score_all(prefix)).sum() == pytest.approx(1.0)
  assert lm.log_prob([1, 2, 3]) == pytest.approx(lm.score([], 1) + lm.score([1], 2) + lm.score([1, 2], 3))
  path = str(tmp_path / "lm.json")
  lm.save(path)
  loaded = ctc_decode.CharNgramLM.load(path)
  for seq in ([1, 2, 3], [3, 2, 1, 0], []):
    assert loaded.log_prob(seq) == lm.log_prob(seq)
  with pytest.raises(ValueError, match="token ids"):
    lm.fit([[5]])
  unigram = ctc_decode.CharNgramLM(order=1, vocab_size=3).fit([[1, 1, 2]])
  assert unigram.score([2, 2], 1) == pytest.approx(np.log(2.1 / 3.3))


def test_char_ngram_lm_in_beam_search():
  # The acoustics are ambiguous between "1 2" and "1 3"; a bigram LM trained on "1 3" decides.
  probs = np.array([[0.1, 0.8, 0.05, 0.05], [0.1, 0.05, 0.45, 0.4]])
  lp = np.log(probs)
  assert ctc_decode.prefix_beam_search(lp)[0][0] == (1, 2)
  lm = ctc_decode.CharNgramLM(order=2, vocab_size=4).fit([[1, 3]] * 20)
  best, score = ctc_decode.prefix_beam_search(lp, lm=lm, lm_weight=0.5, insertion_bonus=0.1)[0]
  assert best == (1, 3)
  expected = _brute_force(lp)[(1, 3)] + 0.5 * lm.log_prob([1, 3]) + 0.1 * 2
  assert score == pytest.approx(expected)
