"""Error rates against hand-worked examples and against jiwer (used here only as a reference)."""
import numpy as np
import pytest

from speechjax.eval import error_rate

jiwer = pytest.importorskip("jiwer")

WORDS = "the a of cat dog sat on mat big red run to it is was".split()


def _random_pairs(seed: int, count: int) -> list[tuple[str, str]]:
  """Reference sentences and hypotheses made by random substitutions, deletions and insertions."""
  rng = np.random.default_rng(seed)
  pairs = []
  for _ in range(count):
    ref = [str(w) for w in rng.choice(WORDS, rng.integers(1, 15))]
    if rng.random() < 0.2:  # unrelated hypothesis: many ambiguous alignments
      hyp = [str(w) for w in rng.choice(WORDS, rng.integers(0, 15))]
    else:
      hyp = []
      for w in ref:
        r = rng.random()
        if r < 0.1:
          continue
        hyp.append(str(rng.choice(WORDS)) if r < 0.25 else w)
        if rng.random() < 0.1:
          hyp.append(str(rng.choice(WORDS)))
    # Irregular spacing: wer splits on any whitespace run; cer keeps inner spaces, strips the ends.
    sep = "  " if rng.random() < 0.2 else " "
    pairs.append((" ".join(ref), (" " if rng.random() < 0.2 else "") + sep.join(hyp)))
  return pairs


def test_hand_examples():
  assert error_rate.edit_distance("abc", "abc") == (0, 0, 0)
  assert error_rate.edit_distance("abc", "axc") == (1, 0, 0)
  assert error_rate.edit_distance("abc", "ac") == (0, 1, 0)
  assert error_rate.edit_distance("abc", "abxc") == (0, 0, 1)
  assert error_rate.edit_distance("", "ab") == (0, 0, 2)
  assert error_rate.edit_distance("ab", "") == (0, 2, 0)
  assert error_rate.edit_distance([1, 2, 3], [1, 2, 3, 4, 5]) == (0, 0, 2)
  # "kitten" -> "sitting": 2 substitutions and 1 insertion.
  assert error_rate.edit_distance("kitten", "sitting") == (2, 0, 1)
  assert error_rate.wer("the cat sat", "the cat sat on") == pytest.approx(1 / 3)
  assert error_rate.cer("ab c", "ab  c") == pytest.approx(1 / 4)


def test_edit_counts_match_jiwer_process_words():
  pairs = _random_pairs(0, 400)
  ambiguous = 0
  for ref, hyp in pairs:
    out = jiwer.process_words(ref, hyp)
    s, d, i = error_rate.edit_distance(ref.split(), hyp.split())
    assert (s, d, i) == (out.substitutions, out.deletions, out.insertions), (ref, hyp)
    # Aligning the reversed sequences gives another minimal alignment; where its split differs the
    # pair has several minimal alignments and the tie-breaking convention decided.
    s_r, d_r, i_r = error_rate.edit_distance(ref.split()[::-1], hyp.split()[::-1])
    assert s_r + d_r + i_r == s + d + i
    ambiguous += (s_r, d_r, i_r) != (s, d, i)
  assert ambiguous > 20


def test_corpus_rates_match_jiwer():
  pairs = _random_pairs(1, 300)
  refs, hyps = [p[0] for p in pairs], [p[1] for p in pairs]
  assert error_rate.wer(refs, hyps) == pytest.approx(jiwer.wer(refs, hyps), abs=1e-12)
  assert error_rate.cer(refs, hyps) == pytest.approx(jiwer.cer(refs, hyps), abs=1e-12)
  out = jiwer.process_characters(refs, hyps)
  er = error_rate.ErrorRate()
  for ref, hyp in pairs:
    er.add(list(ref.strip()), list(hyp.strip()))
  assert (er.counts.substitutions, er.counts.deletions, er.counts.insertions) == (
      out.substitutions, out.deletions, out.insertions)
  assert er.counts.hits == out.hits and er.counts.utterances == len(pairs)


def test_empty_hypothesis_and_reference():
  assert error_rate.wer("a b c", "") == 1.0 == jiwer.wer("a b c", "")
  assert error_rate.wer(["a b", ""], ["a b", "x y"]) == 1.0 == jiwer.wer(["a b", ""], ["a b", "x y"])
  # An all-empty reference corpus: 0 when nothing is hypothesised, else the insertion count.
  assert error_rate.wer("", "") == 0.0
  assert error_rate.wer("", "x y") == 2.0 == jiwer.wer("", "x y")
  assert error_rate.cer(" ", "ab") == 2.0


def test_accumulator_and_per():
  er = error_rate.ErrorRate()
  assert er.rate == 0.0
  assert er.add(["a", "b", "c"], ["a", "x"]) == (1, 1, 0)
  er.add(["d"], ["d", "e"])
  assert er.counts == error_rate.EditCounts(1, 1, 1, 4, 2)
  assert er.rate == pytest.approx(3 / 4)
  refs = ["sil dh ax k ae t sil", ["hh ax", "l", "ow"]]
  hyps = [["sil", "dh", "ax", "k", "ae", "sil"], ["hh ax", "l", "ow", "w"]]
  assert error_rate.per(refs, hyps) == pytest.approx(2 / 10)


def test_bad_arguments():
  with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
    error_rate.wer(["a", "b"], ["a"])
  with pytest.raises(ValueError, match="two strings or two lists"):
    error_rate.cer("a", ["a"])


def test_long_sequences_are_fast():
  rng = np.random.default_rng(0)
  ref = rng.integers(0, 30, 2000).tolist()
  hyp = [t if rng.random() > 0.2 else 31 for t in ref]
  s, d, i = error_rate.edit_distance(ref, hyp)
  assert s == sum(h == 31 for h in hyp) and d == i == 0
