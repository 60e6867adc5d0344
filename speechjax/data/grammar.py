"""Sentences with syntax for the synthetic corpus (`speechjax synth --text grammar`): a small grammar per
language, so that a text LM has something to learn beyond word frequencies.

Clauses (one, or two joined by a conjunction):
    SUBJECT VERB_T OBJECT [TIME | PLACE]      "the old dog finds a red ball in the garden"
    SUBJECT VERB_I [ADVERB] [PLACE]           "la niña canta bien en casa"
    SUBJECT COPULA ADJECTIVE                  "die Katze ist klein"
Noun phrases agree: German articles and attributive adjectives follow gender and case (nominative subjects,
accusative objects), Spanish and French articles and adjectives follow gender (French size / age adjectives
before the noun, the others after). Verbs are third person singular present. Subjects are people or animals,
objects are things. Each language has ~90 words; every choice is uniform, so word frequencies are flat and
the structure is what a model can learn.

`sentence(rng, language)` → (text to speak, transcript: lower-case words separated by spaces).
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Lexicon:
  subjects: tuple[tuple[str, str], ...]      # (noun, gender m / f / n)
  objects: tuple[tuple[str, str], ...]
  transitive: tuple[str, ...]
  intransitive: tuple[str, ...]
  adverbs: tuple[str, ...]
  adjectives: tuple[tuple[str, str], ...]    # (masculine / base form, feminine form)
  copula: str
  conjunctions: tuple[str, ...]
  places: tuple[str, ...]
  times: tuple[str, ...]
  articles: dict                              # (definite, gender, case) → article
  prenominal: frozenset = frozenset()         # adjectives placed before the noun (French)


def _same(*words):
  return tuple((w, w) for w in words)


def _gendered(*pairs):
  return tuple(tuple(p.split("/")) if "/" in p else (p, p) for p in pairs)


def _nouns(spec: str):
  return tuple(tuple(item.split(":")) for item in spec.split())


_ROMANCE_CASES = ("nom", "acc")

LEXICONS = {
    "en": Lexicon(
        subjects=_nouns("man:m woman:f child:n teacher:m doctor:m farmer:m dog:m cat:f bird:m horse:n "
                        "girl:f boy:m friend:m baker:m"),
        objects=_nouns("book:n apple:m letter:m ball:m car:n house:n cake:m song:n door:f window:n "
                       "bottle:f picture:n"),
        transitive=("sees", "finds", "likes", "buys", "opens", "paints", "carries", "brings", "wants", "sells"),
        intransitive=("sleeps", "laughs", "runs", "sings", "waits", "works", "walks", "dances"),
        adverbs=("slowly", "quickly", "quietly", "happily", "often", "well"),
        adjectives=_same("big", "small", "old", "young", "red", "happy", "new", "black", "green", "quiet"),
        copula="is", conjunctions=("and", "but", "because"),
        places=("in the garden", "at home", "in the kitchen", "near the river", "on the street"),
        times=("today", "every morning", "in the evening", "again", "now"),
        articles={(d, g, c): ("the" if d else "a") for d in (True, False) for g in "mfn" for c in ("nom", "acc")}),
    "de": Lexicon(
        subjects=_nouns("Mann:m Frau:f Kind:n Lehrer:m Ärztin:f Koch:m Hund:m Katze:f Vogel:m Pferd:n "
                        "Mädchen:n Sohn:m Freund:m Bäcker:m"),
        objects=_nouns("Buch:n Apfel:m Brief:m Ball:m Auto:n Haus:n Kuchen:m Lied:n Tür:f Fenster:n "
                       "Flasche:f Bild:n"),
        transitive=("sieht", "findet", "mag", "kauft", "öffnet", "malt", "trägt", "bringt", "will", "verkauft"),
        intransitive=("schläft", "lacht", "läuft", "singt", "wartet", "arbeitet", "geht", "tanzt"),
        adverbs=("langsam", "schnell", "leise", "fröhlich", "oft", "gut"),
        adjectives=_same("groß", "klein", "alt", "jung", "rot", "glücklich", "neu", "schwarz", "grün", "ruhig"),
        copula="ist", conjunctions=("und", "aber", "denn"),
        places=("im Garten", "zu Hause", "in der Küche", "am Fluss", "auf der Straße"),
        times=("heute", "jeden Morgen", "am Abend", "wieder", "jetzt"),
        articles={(True, "m", "nom"): "der", (True, "f", "nom"): "die", (True, "n", "nom"): "das",
                  (True, "m", "acc"): "den", (True, "f", "acc"): "die", (True, "n", "acc"): "das",
                  (False, "m", "nom"): "ein", (False, "f", "nom"): "eine", (False, "n", "nom"): "ein",
                  (False, "m", "acc"): "einen", (False, "f", "acc"): "eine", (False, "n", "acc"): "ein"}),
    "es": Lexicon(
        subjects=_nouns("hombre:m mujer:f niño:m maestra:f médico:m granjero:m perro:m gata:f pájaro:m "
                        "caballo:m chica:f chico:m amigo:m panadera:f"),
        objects=_nouns("libro:m manzana:f carta:f pelota:f coche:m casa:f pastel:m canción:f puerta:f "
                       "ventana:f botella:f cuadro:m"),
        transitive=("ve", "encuentra", "quiere", "compra", "abre", "pinta", "lleva", "trae", "vende", "busca"),
        intransitive=("duerme", "ríe", "corre", "canta", "espera", "trabaja", "camina", "baila"),
        adverbs=("despacio", "rápido", "tranquilamente", "felizmente", "a menudo", "bien"),
        adjectives=_gendered("grande", "pequeño/pequeña", "viejo/vieja", "joven", "rojo/roja", "feliz",
                             "nuevo/nueva", "negro/negra", "verde", "tranquilo/tranquila"),
        copula="es", conjunctions=("y", "pero", "porque"),
        places=("en el jardín", "en casa", "en la cocina", "cerca del río", "en la calle"),
        times=("hoy", "cada mañana", "por la tarde", "otra vez", "ahora"),
        articles={(d, g, c): {(True, "m"): "el", (True, "f"): "la", (False, "m"): "un", (False, "f"): "una"}[d, g]
                  for d in (True, False) for g in "mf" for c in _ROMANCE_CASES}),
    "fr": Lexicon(
        subjects=_nouns("femme:f garçon:m fille:f professeur:m médecin:m fermier:m chien:m chat:m cheval:m "
                        "poule:f voisin:m boulanger:m souris:f père:m"),
        objects=_nouns("livre:m pomme:f lettre:f balle:f voiture:f maison:f gâteau:m chanson:f porte:f "
                       "fenêtre:f bouteille:f tableau:m"),
        transitive=("voit", "trouve", "aime", "achète", "ouvre", "peint", "porte", "apporte", "veut", "vend"),
        intransitive=("dort", "rit", "court", "chante", "attend", "travaille", "marche", "danse"),
        adverbs=("lentement", "vite", "doucement", "souvent", "bien", "joyeusement"),
        adjectives=_gendered("grand/grande", "petit/petite", "vieux/vieille", "jeune", "rouge",
                             "heureux/heureuse", "nouveau/nouvelle", "noir/noire", "vert/verte", "calme"),
        copula="est", conjunctions=("et", "mais", "car"),
        places=("dans le jardin", "à la maison", "dans la cuisine", "près de la rivière", "dans la rue"),
        times=("ce matin", "chaque soir", "le soir", "encore", "maintenant"),
        articles={(d, g, c): {(True, "m"): "le", (True, "f"): "la", (False, "m"): "un", (False, "f"): "une"}[d, g]
                  for d in (True, False) for g in "mf" for c in _ROMANCE_CASES},
        prenominal=frozenset({"grand", "petit", "vieux", "jeune", "nouveau"})),
}
LANGUAGES = tuple(sorted(LEXICONS))

# German attributive adjective endings after the definite / indefinite article, by (gender, case).
_GERMAN_ENDINGS = {
    True: {("m", "nom"): "e", ("f", "nom"): "e", ("n", "nom"): "e",
           ("m", "acc"): "en", ("f", "acc"): "e", ("n", "acc"): "e"},
    False: {("m", "nom"): "er", ("f", "nom"): "e", ("n", "nom"): "es",
            ("m", "acc"): "en", ("f", "acc"): "e", ("n", "acc"): "es"}}

ADJECTIVE_PROB = 0.3      # an attributive adjective in a noun phrase
TWO_CLAUSES_PROB = 0.4


def _pick(rng: np.random.Generator, options):
  return options[int(rng.integers(len(options)))]


def _agree(adjective: tuple[str, str], gender: str) -> str:
  return adjective[1] if gender == "f" else adjective[0]


def _noun_phrase(rng, language: str, lex: Lexicon, nouns, case: str) -> tuple[list[str], str]:
  """Article, optional attributive adjective and noun in agreement; returns (words, gender)."""
  noun, gender = _pick(rng, nouns)
  definite = bool(rng.random() < 0.6)
  words = [lex.articles[definite, gender, case]]
  if rng.random() >= ADJECTIVE_PROB:
    return words + [noun], gender
  adjective = _pick(rng, lex.adjectives)
  if language == "de":
    return words + [adjective[0] + _GERMAN_ENDINGS[definite][gender, case], noun], gender
  form = _agree(adjective, gender)
  if language == "en" or adjective[0] in lex.prenominal:
    return words + [form, noun], gender
  return words + [noun, form], gender


def _english_an(words: list[str]) -> list[str]:
  """"a" → "an" before a vowel ("an old dog", "an apple")."""
  return [("an" if w == "a" and i + 1 < len(words) and words[i + 1][0] in "aeiou" else w)
          for i, w in enumerate(words)]


def _clause(rng, language: str, lex: Lexicon) -> list[str]:
  subject, gender = _noun_phrase(rng, language, lex, lex.subjects, "nom")
  kind = int(rng.integers(3))
  if kind == 0:
    obj, _ = _noun_phrase(rng, language, lex, lex.objects, "acc")
    tail = _pick(rng, ((), (_pick(rng, lex.times),), (_pick(rng, lex.places),)))
    return subject + [_pick(rng, lex.transitive)] + obj + list(tail)
  if kind == 1:
    words = subject + [_pick(rng, lex.intransitive)]
    if rng.random() < 0.5:
      words.append(_pick(rng, lex.adverbs))
    if rng.random() < 0.5:
      words.append(_pick(rng, lex.places))
    return words
  return subject + [lex.copula, _agree(_pick(rng, lex.adjectives), gender)]


def sentence(rng: np.random.Generator, language: str) -> tuple[str, str]:
  """Draws a sentence; returns (text to speak, transcript)."""
  if language not in LEXICONS:
    raise ValueError(f"languages: no grammar for {language!r}; grammars exist for {list(LANGUAGES)}")
  lex = LEXICONS[language]
  words = _clause(rng, language, lex)
  if rng.random() < TWO_CLAUSES_PROB:
    words = words + [_pick(rng, lex.conjunctions)] + _clause(rng, language, lex)
  if language == "en":
    words = _english_an(words)
  text = " ".join(words)
  text = text[0].upper() + text[1:] + "."
  return text, " ".join(words).lower()
