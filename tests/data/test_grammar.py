"""The grammar text of the synthetic corpus (speechjax.data.grammar, `synth --text grammar`): closed
vocabularies, agreement, determinism, and structure a bigram can learn where Zipf word draws have none."""
import collections
import json
import math

import numpy as np
import pytest

from speechjax.data import grammar, synth


def _draw(language: str, count: int, seed: int = 0, draw=grammar.sentence) -> list[str]:
  return [draw(np.random.default_rng((seed, i)), language)[1] for i in range(count)]


def _vocabulary(lex: grammar.Lexicon) -> set[str]:
  phrases = [*lex.transitive, *lex.intransitive, *lex.adverbs, lex.copula, *lex.conjunctions, *lex.places,
             *lex.times, *lex.articles.values(), *(n for n, _ in lex.subjects + lex.objects),
             *(form for pair in lex.adjectives for form in pair)]
  words = {w.lower() for phrase in phrases for w in phrase.split()}
  stems = {a[0].lower() + ending for a in lex.adjectives for ending in ("e", "en", "er", "es")}
  return words | stems | {"an"}


@pytest.mark.parametrize("language", grammar.LANGUAGES)
def test_sentences_use_the_closed_vocabulary_and_are_deterministic(language):
  sentences = _draw(language, 300)
  assert sentences == _draw(language, 300)
  words = [w for s in sentences for w in s.split()]
  assert set(words) <= _vocabulary(grammar.LEXICONS[language])
  assert 3 <= np.mean([len(s.split()) for s in sentences]) <= 12
  assert len(set(sentences)) > 250   # varied, not a handful of templates


def _genders(lex: grammar.Lexicon) -> dict[str, str]:
  return {n.lower(): g for n, g in lex.subjects + lex.objects}


def _next_noun(words: list[str], start: int, genders: dict[str, str]) -> str | None:
  """The lexicon noun among the next two words (an adjective may come first); None after an article of a
  fixed place phrase ("en la cocina")."""
  return next((w for w in words[start:start + 2] if w in genders), None)


def test_agreement_german_case_and_romance_gender():
  de = _genders(grammar.LEXICONS["de"])
  for sentence in _draw("de", 400):   # accusative masculine articles only before masculine nouns
    words = sentence.split()
    for i, word in enumerate(words):
      if word in ("den", "einen"):
        assert de[_next_noun(words, i + 1, de)] == "m", sentence
  for language in ("es", "fr"):
    lex = grammar.LEXICONS[language]
    genders = _genders(lex)
    feminine_articles = {a for (_, g, _), a in lex.articles.items() if g == "f"}
    masculine_only = {m for m, f in lex.adjectives if m != f}
    for sentence in _draw(language, 400):
      words = sentence.split()
      for i, word in enumerate(words):
        noun = _next_noun(words, i + 1, genders) if word in feminine_articles else None
        if noun:
          assert genders[noun] == "f", sentence
          phrase = words[i + 1:words.index(noun, i + 1) + 2]
          assert not masculine_only & set(phrase), sentence


def _perplexity(train: list[str], test: list[str], order: int) -> float:
  """Add-0.1 word n-gram perplexity (order 1 or 2) with sentence boundaries."""
  counts, context = collections.Counter(), collections.Counter()
  vocab = {w for s in train + test for w in s.split()} | {"</s>"}
  for s in train:
    words = ["<s>"] + s.split() + ["</s>"]
    for prev, word in zip(words, words[1:]):
      key = (prev, word) if order == 2 else word
      counts[key] += 1
      context[prev if order == 2 else None] += 1
  nats, tokens = 0.0, 0
  for s in test:
    words = ["<s>"] + s.split() + ["</s>"]
    for prev, word in zip(words, words[1:]):
      key, ctx = ((prev, word), prev) if order == 2 else (word, None)
      nats -= math.log((counts[key] + 0.1) / (context[ctx] + 0.1 * len(vocab)))
      tokens += 1
  return math.exp(nats / tokens)


def test_grammar_text_has_structure_that_zipf_draws_lack():
  """A word bigram predicts grammar sentences far better than a unigram does; on Zipf draws it does not."""
  grammar_text = _draw("en", 3000)
  zipf_text = _draw("en", 3000, draw=synth._sentence)  # pylint: disable=protected-access
  ratio = {name: _perplexity(text[:2500], text[2500:], 2) / _perplexity(text[:2500], text[2500:], 1)
           for name, text in (("grammar", grammar_text), ("zipf", zipf_text))}
  assert ratio["grammar"] < 0.4 and ratio["zipf"] > 0.9, ratio


def test_synth_writes_grammar_text_and_keeps_it_in_the_corpus_identity(tmp_path):
  corpus = synth.generate(str(tmp_path), size="micro", seed=0, workers=1, languages=("en", "fr"),
                          text="grammar")
  assert synth.is_generated(corpus, size="micro", seed=0, languages=("en", "fr"), text="grammar")
  assert not synth.is_generated(corpus, size="micro", seed=0, languages=("en", "fr"))
  with open(f"{corpus}/train.jsonl", encoding="utf-8") as f:
    lines = [json.loads(line) for line in f]
  for line in lines:
    assert set(line["transcript"].split()) <= _vocabulary(grammar.LEXICONS[line["language"]])
  with pytest.raises(ValueError, match="languages: no grammar"):
    synth.generate(str(tmp_path / "x"), size="micro", languages=("en", "it"), text="grammar")
  with pytest.raises(ValueError, match="text: unknown"):
    synth.generate(str(tmp_path / "y"), size="micro", text="poems")
