"""`speechjax generate`: AudioLM continuation of a prompt wav, from the checkpoints of every part.

    speechjax generate --prompt in.wav --seconds 3 --out out.wav \
        --semantic SEM_LM --coarse COARSE_LM --fine FINE_LM --codec CODEC \
        --hubert HUBERT --layer 6 --kmeans km.npz [--temperature 0.6 0.8 0.6 --top-k 0 --seed 0]

prompt wav → semantic tokens (k-means ids of the encoder's layer L, as `speechjax tokenize --model hubert`)
and acoustic tokens (codec codes, `--model soundstream`) → stage 1 continues the semantic tokens → stage 2
the coarse levels → stage 3 the fine levels (in chunks of the fine stage's training crop) → codec decode.
The wav holds the prompt (its codec round trip) followed by `--seconds` of continuation.

Lengths: the prompt is cut to whole codec frames; the continuation has round(seconds · frame rate) frames.
Semantic tokens are de-duplicated (as the stages are trained), so their count is the prompt's de-duplicated
count scaled to the total length. Stages 1 and 2 see the whole sequence (no sliding window): it must fit
each model's `max_length`, which the error names.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from speechjax.models import audiolm


@dataclasses.dataclass
class Generator:
  models: dict                      # {stage: (model config, params)}
  vocab: audiolm.Vocab
  codec: object                     # speechjax.models.codec.Codec
  semantic_tokenizer: object        # speechjax.cluster.tokenize.Tokenizer (one stream)
  fine_chunk_frames: int            # stage 3 runs in chunks of its training crop

  @classmethod
  def load(cls, stages: dict, codec: str, hubert: str, layer: int, kmeans_path: str) -> "Generator":
    """stages {stage: token-LM workdir}; the other arguments as the CLI's."""
    import speechjax
    from speechjax.cluster import kmeans, tokenize
    from speechjax.eval.codec import load_codec
    from speechjax.tasks import token_lm as token_lm_task
    models, vocab, rates = {}, None, {}
    for stage in audiolm.STAGES:
      config, _, params = speechjax.load(stages[stage])
      if config.task.name != "token_lm" or config.task.stage != stage:
        raise ValueError(f"--{stage} {stages[stage]}: holds task {config.task.name!r} stage "
                         f"{config.task.get('stage')!r}, expected token_lm stage {stage!r}")
      this = token_lm_task.vocab_of(config.task)
      if vocab is not None and this != vocab:
        raise ValueError(f"--{stage}: task vocabulary {this} differs from the other stages' {vocab}")
      vocab, models[stage] = this, (config.model, params)
      rates[stage] = (config.task.semantic_rate, config.task.acoustic_rate)
      if stage == "fine":
        fine_chunk = token_lm_task.frames(config, config.task.acoustic_rate)
    codec = load_codec(codec)
    frame_rate = codec.sample_rate / codec.hop
    _check(codec.config.model.codebook_size == vocab.codebook, "codec codebook_size",
           codec.config.model.codebook_size, f"task.codebook_size={vocab.codebook}")
    _check(codec.config.model.num_quantizers >= vocab.levels, "codec num_quantizers",
           codec.config.model.num_quantizers, f">= task.levels={vocab.levels}")
    _check(all(r[1] == frame_rate for r in rates.values()), "task.acoustic_rate",
           {s: r[1] for s, r in rates.items()}, f"the codec's frame rate {frame_rate:g}")
    centroids = kmeans.load(kmeans_path)[0].centroids
    semantic = tokenize.hubert_tokenizer(*speechjax.load(hubert), layer, centroids)
    _check(len(centroids) <= vocab.semantic, "k-means K", len(centroids),
           f"<= task.semantic_vocab={vocab.semantic}")
    semantic_rates = {s: rates[s][0] for s in ("semantic", "coarse")}   # the stages that read semantic tokens
    _check(all(r == semantic.rate for r in semantic_rates.values()), "task.semantic_rate", semantic_rates,
           f"the semantic tokenizer's rate {semantic.rate}")
    return cls(models, vocab, codec, semantic, fine_chunk)

  def lengths(self, prompt_semantic: np.ndarray, prompt_frames: int, seconds: float) -> tuple[int, int]:
    """(semantic tokens, acoustic frames) of prompt + continuation; raises if a stage cannot hold them."""
    frame_rate = self.codec.sample_rate / self.codec.hop
    frames = prompt_frames + max(1, round(seconds * frame_rate))
    tokens = np.asarray(prompt_semantic)[None]
    runs = max(1, int(audiolm.dedup(tokens, np.ones(tokens.shape, bool)).sum()))   # as the stages saw them
    semantic = max(runs + 1, math.ceil(runs * frames / max(prompt_frames, 1)))
    need = {"semantic": audiolm.sequence_length("semantic", self.vocab, semantic, frames),
            "coarse": audiolm.sequence_length("coarse", self.vocab, semantic, frames)}
    for stage, length in need.items():
      limit = self.models[stage][0].max_length
      if length > limit:
        raise ValueError(f"--seconds {seconds}: stage {stage} needs {length} tokens for {frames} frames "
                         f"({semantic} semantic tokens) but its model.max_length is {limit}; shorten the "
                         f"prompt or --seconds")
    return semantic, frames

  def continue_prompt(self, audio: np.ndarray, seconds: float, seed: int = 0,
                      temperatures=(0.6, 0.8, 0.6), top_k: int = 0) -> np.ndarray:
    """audio [T] float32 at the codec's rate → prompt (cut to whole frames) + continuation [T'] float32."""
    hop = self.codec.hop
    audio = np.asarray(audio, np.float32)[:len(audio) // hop * hop]
    if not len(audio):
      raise ValueError(f"the prompt is shorter than one codec frame ({hop} samples)")
    from speechjax.cluster import features   # padded as `speechjax tokenize` pads (same features)
    _, batch, lengths = next(features.padded_batches(iter([{"id": "", "audio": audio}]), 1, features.BUCKET))
    ids, counts = self.semantic_tokenizer.encode(batch, lengths)
    prompt_semantic = ids[0, :counts[0], 0]
    codes_prompt = self.codec.encode(audio[None], self.vocab.levels)
    semantic_frames, frames = self.lengths(prompt_semantic, codes_prompt.shape[1], seconds)
    configs = {stage: cfg for stage, (cfg, _) in self.models.items()}

    @jax.jit
    def run(params, semantic_prompt, codes_prompt, rng):   # params traced, not baked in as constants
      models = {stage: (configs[stage], params[stage]) for stage in configs}
      return audiolm.continue_tokens(models, self.vocab, semantic_prompt, codes_prompt, semantic_frames,
                                     frames, rng, tuple(temperatures), top_k, self.fine_chunk_frames)
    _, codes = run({stage: p for stage, (_, p) in self.models.items()},
                   prompt_semantic[None].astype(np.int32), codes_prompt, jax.random.PRNGKey(seed))
    return self.codec.decode(np.asarray(codes))[0]


def _check(ok: bool, what: str, value, expected: str) -> None:
  if not ok:
    raise ValueError(f"generate: {what} is {value}; expected {expected}")


def add_arguments(parser):
  parser.add_argument("--prompt", required=True, help="a wav (any rate; resampled to the codec's)")
  parser.add_argument("--seconds", type=float, default=3.0, help="length of the continuation")
  parser.add_argument("--out", required=True, help="the wav written: prompt + continuation")
  for stage in audiolm.STAGES:
    parser.add_argument(f"--{stage}", required=True, help=f"token-LM workdir of the {stage} stage")
  parser.add_argument("--codec", required=True, help="SoundStream workdir (acoustic tokens)")
  parser.add_argument("--hubert", required=True, help="encoder workdir whose layer gives semantic tokens")
  parser.add_argument("--layer", type=int, required=True, help="1-based transformer layer")
  parser.add_argument("--kmeans", required=True, help="centroids from `speechjax kmeans`")
  parser.add_argument("--temperature", type=float, nargs=3, default=(0.6, 0.8, 0.6),
                      metavar=("SEMANTIC", "COARSE", "FINE"))
  parser.add_argument("--top-k", type=int, default=0)
  parser.add_argument("--seed", type=int, default=0)


def run(args) -> int:
  import soundfile as sf
  from speechjax.audio import io
  generator = Generator.load({s: getattr(args, s) for s in audiolm.STAGES}, args.codec, args.hubert,
                             args.layer, args.kmeans)
  rate = generator.codec.sample_rate
  with open(args.prompt, "rb") as f:
    prompt = io.conform(io.decode(f.read()), rate).audio
  audio = generator.continue_prompt(prompt, args.seconds, args.seed, args.temperature, args.top_k)
  sf.write(args.out, audio, rate)
  prompt_seconds = len(prompt) // generator.codec.hop * generator.codec.hop / rate
  print(f"wrote {args.out}: {prompt_seconds:.2f} s prompt + {len(audio) / rate - prompt_seconds:.2f} s "
        f"generated at {rate} Hz")
  return 0
