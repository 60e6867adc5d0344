"""Speech-LLaMA training (`speechjax.models.speech_llm`): next-token cross-entropy on the transcript only.

    speechjax train --config configs/speech_llm.py:tiny --workdir W [--config.init_from=ENCODER_WORKDIR]

Params: {"prefix": encoder + projection, "llm": the LLaMA, "lora": adapters (task.llm_mode = "lora")}.
`task.llm_mode`:
    frozen   the LLM is fixed; the encoder (unless `task.freeze_encoder`) and projection train
    lora     the LLM is fixed; LoRA adapters (rank `task.lora_rank`, scale `task.lora_alpha` / rank) on its
             q, k, v, o train (`speechjax.nn.lora`)
    full     everything trains
Multi-token heads (`mtp_<j>`) are new and train in every mode. Fixed parts get no gradient (stop_gradient:
XLA drops their weight gradients) and no optimizer state (they
are added to `optim.frozen`). `init_from` warm-starts the encoder from any encoder checkpoint (as CTC),
`llm_init` the LLM from a LLaMA checkpoint (a `text_lm` run on the same symbols, or a converted HF model
whose vocabulary the data's symbols index).
Targets are the data's `data.targets` symbols (`transcript`: characters), mapped as in
`speech_llm.teacher_forcing`; logged: `token_accuracy` (teacher-forced argmax hits on transcript + EOS).
With `model.llm.mtp_heads` = k > 0 the loss adds `task.mtp_weight` × the mean cross-entropy of the k future
heads (multi-token prediction; `speech_llm.multi_token_decode` uses them).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import linen as nn

from speechjax.config import require
from speechjax.data import vocab
from speechjax.models import llama, registry, speech_llm
from speechjax.nn import layer_stack, lora
from speechjax.parallel import mesh as mesh_lib
from speechjax.text import symbols_of
from speechjax.text_tokenizer import TextTokenizer
from speechjax.tasks import base, pretrained
from speechjax.train import checkpoint

MODES = ("frozen", "lora", "full")
NEW_HEADS = "mtp_"   # LLM params a pretrained LLM does not have (multi-token heads): trained in every mode
# what a pretrained LLM (`llm_init`) must share with `model.llm`
LLM_ARCHITECTURE = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "head_dim", "tie_word_embeddings",
                    "attention_bias", "mlp_bias")


class SpeechLLM(nn.Module):
  """AudioPrefix ("prefix") + LlamaForCausalLM ("llm"): (audio, audio_mask, inputs [B, T], mask [B, T])
  → text logits [B, T, 1 + llm.mtp_heads, V] (head j predicts the token j + 1 further on)."""
  config: ml_collections.FrozenConfigDict

  @nn.compact
  def __call__(self, audio, audio_mask, inputs, inputs_mask, train: bool = False):
    prefix, prefix_mask = speech_llm.AudioPrefix(self.config, name="prefix")(audio, audio_mask, train)
    mask = jnp.concatenate([prefix_mask, inputs_mask], axis=1)
    logits = llama.LlamaForCausalLM(self.config.llm, name="llm")(inputs, prefix=prefix, mask=mask,
                                                                 all_heads=True)
    return logits[:, prefix.shape[1]:]


def _encoder_view(config) -> ml_collections.ConfigDict:
  """The CTC-style config `pretrained` reads: init_from, model = the encoder, reinit_top_layers."""
  return ml_collections.ConfigDict({"init_from": config.get("init_from", ""), "model": config.model.encoder,
                                    "reinit_top_layers": 0})


def resolve(config) -> None:
  """In place: the encoder architecture of `init_from`, the target vocabulary, the LLM vocabulary size and
  the frozen parts (`optim.frozen`) of the mode."""
  t = config.task
  require(t.llm_mode in MODES, "task.llm_mode", t.llm_mode, f"expected one of {MODES}")
  view = _encoder_view(config)
  pretrained.resolve_architecture(view)
  config.model.encoder = view.model
  vocab.resolve(config.data)
  config.model.llm.vocab_size = speech_llm.text_ids(config.data).vocab_size
  if config.get("llm_init"):   # before any compile: a mismatch fails at start-up, naming the field
    llm_init_config(config.llm_init, config.model.llm)
  frozen = set(config.optim.frozen)
  if t.llm_mode != "full":
    frozen.add(f"llm/(?!{NEW_HEADS}).*")
  if t.freeze_encoder:
    frozen.add("prefix/(?!projection/).*")
  config.optim.frozen = tuple(sorted(frozen))


class Task(base.Task):

  def __init__(self, config):
    resolve(config)
    self.text = speech_llm.text_ids(config.data)
    super().__init__(config)

  def build_model(self):
    speech_llm.validate(self.config.model)
    return SpeechLLM(ml_collections.FrozenConfigDict(self.config.model))

  def model_inputs(self, batch):
    inputs, _, mask = speech_llm.teacher_forcing(batch["targets"], batch["targets_mask"], self.text)
    return batch["audio"], batch["audio_mask"], inputs, mask

  def abstract_variables(self, batch):
    variables = super().abstract_variables(batch)
    if self.config.task.llm_mode != "lora":
      return variables
    adapters = jax.eval_shape(lambda p: self.init_adapters(jax.random.PRNGKey(0), p),
                              mesh_lib.strip_boxes(variables["params"]["llm"]))
    return {**variables, "params": {**variables["params"], "lora": adapters}}

  def init_adapters(self, rng, llm_params):
    return lora.init(rng, llm_params, lora.LLAMA_ATTENTION, self.config.task.lora_rank)

  def init_state(self, rng, batch):
    state = super().init_state(rng, batch)
    if self.config.task.llm_mode != "lora":
      return state
    params = {**state.params, "lora": self.init_adapters(jax.random.fold_in(rng, 1), state.params["llm"])}
    return state.replace(params=params, opt_state=self.tx.init(params),
                         ema_params=params if state.ema_params is not None else None)

  def model_params(self, params, train: bool):
    """The params the model applies: fixed parts behind stop_gradient, LoRA merged into the LLM."""
    t = self.config.task
    llm = params["llm"]
    if t.llm_mode != "full":
      llm = {k: v if k.startswith(NEW_HEADS) else jax.lax.stop_gradient(v) for k, v in llm.items()}
    if t.llm_mode == "lora":
      llm = lora.merge(llm, params["lora"], t.lora_alpha)
    prefix = params["prefix"]
    if t.freeze_encoder and train:
      prefix = {k: v if k == "projection" else jax.lax.stop_gradient(v) for k, v in prefix.items()}
    return {"prefix": prefix, "llm": llm}

  def loss(self, params, batch, rng, train, step):
    del step
    audio, audio_mask, inputs, mask = self.model_inputs(batch)
    _, outputs, out_mask = speech_llm.teacher_forcing(batch["targets"], batch["targets_mask"], self.text)
    mask_rng, dropout_rng = jax.random.split(rng)
    logits = self.model.apply({"params": self.model_params(params, train)}, audio, audio_mask, inputs, mask,
                              train=train, rngs={"mask": mask_rng, "dropout": dropout_rng})
    loss, metrics = 0.0, {"tokens": out_mask.sum()}
    for j in range(logits.shape[2]):   # head j: the token j + 1 ahead (j = 0: the next token)
      target = jnp.pad(outputs[:, j:], ((0, 0), (0, j)))
      valid = jnp.pad(out_mask[:, j:], ((0, 0), (0, j)))
      count = jnp.maximum(valid.sum(), 1)
      ce = jnp.where(valid, optax.softmax_cross_entropy_with_integer_labels(logits[:, :, j], target), 0.0)
      hits = (jnp.argmax(logits[:, :, j], -1) == target) & valid
      name = "" if j == 0 else f"mtp{j}_"
      metrics.update({f"{name}token_accuracy": hits.sum() / count, f"{name}ce": ce.sum() / count})
      loss = loss + (1.0 if j == 0 else self.config.task.mtp_weight / (logits.shape[2] - 1)) * ce.sum() / count
    return loss, metrics

  def warm_start(self, params):
    prefix = pretrained.warm_start(_encoder_view(self.config), params["prefix"])
    llm = params["llm"]
    if self.config.get("llm_init"):
      llm = load_llm(self.config.llm_init, self.config.model.llm, llm)
    return {**params, "prefix": prefix, "llm": llm}

  def forward_flops(self):
    c = self.config
    family = registry.get(c.model.encoder.model_type, registry.ENCODERS)
    encoder, frames = family.encoder_flops(c.model.encoder, c.data.max_sample_size)
    length = frames // c.model.stride + c.data.max_target_length + 1
    return encoder + llama.forward_flops(c.model.llm, length)


def llm_init_config(path: str, llm_cfg) -> tuple[int, ml_collections.ConfigDict]:
  """(step, model config) of the LLaMA checkpoint at `path`, read from its metadata only; its
  architecture must be `llm_cfg`'s (ConfigError names the field)."""
  step, meta = checkpoint.read_meta(checkpoint.checkpoint_dir(path))
  saved = ml_collections.ConfigDict(meta.get("config", {}).get("model", {}))
  require(saved.get("model_type") == "llama", "llm_init", path, "is not a LLaMA checkpoint")
  for field in LLM_ARCHITECTURE:
    require(saved.get(field) == llm_cfg[field], f"model.llm.{field}", llm_cfg[field],
            f"differs from the llm_init checkpoint's {saved.get(field)!r}")
  return step, saved


def load_llm(path: str, llm_cfg, like):
  """The LLaMA params of a checkpoint (a `text_lm` run, or `speechjax convert --from-hf` output) in the
  layout and shardings of `like`; the architecture must be `llm_cfg`'s (ConfigError names the field)."""
  step, saved = llm_init_config(path, llm_cfg)
  directory = checkpoint.checkpoint_dir(path)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  shapes = mesh_lib.strip_boxes(jax.eval_shape(llama.from_config(saved).init, jax.random.PRNGKey(0),
                                               jnp.zeros((1, 1), jnp.int32)))["params"]
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), shapes)
  loaded = layer_stack.match_layout(checkpoint.restore_params(directory, abstract, step), like)
  loaded = {**{k: v for k, v in like.items() if k.startswith(NEW_HEADS) and k not in loaded}, **loaded}
  return jax.tree.map(lambda new, old: jax.device_put(jnp.asarray(new, old.dtype), old.sharding), loaded, like)


def transcriber(config, params):
  """(transcribe(audio [B, T], audio_mask, beam) → text ids per row (lists, EOS and after removed): the
  checkpoint's transcripts with the KV cache, greedy for beam ≤ 1, else beam search (jitted per width);
  ids → target symbols, for scoring)."""
  task = Task(config)
  text, length = task.text, config.data.max_target_length + 1

  @functools.partial(jax.jit, static_argnums=3)
  def decode(p, audio, audio_mask, beam):
    p = task.model_params(p, False)
    if beam <= 1:
      return speech_llm.greedy_decode(config.model, p, audio, audio_mask, length, text)
    return speech_llm.beam_decode(config.model, p, audio, audio_mask, length, text, beam)

  def transcribe(audio, audio_mask, beam: int = 0):
    rows = [list(row) for row in jax.device_get(decode(params, audio, audio_mask, beam))]
    return [[int(i) for i in row[:row.index(text.eos) if text.eos in row else None] if i > 0]
            for row in rows]

  if config.data.get("text_tokenizer"):
    tokenizer = TextTokenizer.load(config.data.text_tokenizer)
    return transcribe, lambda ids: symbols_of("transcript", tokenizer.decode(ids))
  return transcribe, lambda ids: vocab.decode(ids, config.data.target_vocab)
