"""One record per model family (levanter's `LmConfig` registry, big_vision's `Model` + `load` per file).

Each encoder family's model file ends with its `FAMILY = Family(...)`; `speechjax.models.registry` lists the
families, and everything that picks code by `config.model.model_type` reads the record: the CTC and probe
bodies (`encoder`, `validate`, `encoder_flops`), warm starts (`scope`), HF import/export (`hf`), pretraining
tasks (`from_config`, `forward_flops`). Adding a family touches its own files plus one line of the registry.
"""
from __future__ import annotations

import dataclasses
from typing import Callable


@dataclasses.dataclass(frozen=True)
class HFNames:
  """How transformers names the family."""
  model_class: str            # the bare encoder class, e.g. "Wav2Vec2Model"
  prefix: str                 # its state-dict prefix inside *ForCTC / *ForPreTraining, e.g. "wav2vec2."
  pretraining_heads: bool     # whether transformers has this family's pretraining heads


@dataclasses.dataclass(frozen=True)
class Family:
  model_type: str                             # config.model.model_type
  model_config: Callable                      # preset name → model ConfigDict
  from_config: Callable                       # model ConfigDict → the pretraining model (heads included)
  forward_flops: Callable                     # (model ConfigDict, samples) → FLOPs of one forward pass
  encoder: type | None = None                 # the headless encoder (CTC / probe bodies)
  hf: HFNames | None = None                   # transformers names, when HF has the family
  validate: Callable | None = None            # model ConfigDict → None or ConfigError (encoders)
  encoder_flops: Callable | None = None       # (model ConfigDict, samples) → (encoder FLOPs, frames)

  @property
  def scope(self) -> str:
    """The encoder's parameter scope inside pretraining, CTC and probe models (checkpoints rely on it)."""
    return self.model_type
