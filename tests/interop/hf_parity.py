"""Shared by the HF transformers parity and converter tests (test_hf.py: wav2vec 2.0 and HuBERT,
test_wavlm_hf.py: WavLM, test_convert.py): HF models with random weights, padded batches, HF outputs,
state-dict comparisons and the `speechjax convert` verb. torch, transformers and safetensors are imported
when used: the test modules skip (`pytest.importorskip`) where they are missing."""
import argparse
import os

import numpy as np

from speechjax.interop import convert, hf

# Parameters that random init leaves at constants (zero biases, unit norms, ...): perturbed so they matter.
PERTURBED = ("bias", "norm", "masked_spec_embed")


def perturbed_hf_model(model_cls, cfg, perturbed=PERTURBED):
  """HF `model_cls` for our `cfg` in eval mode, random weights (torch seed 0); every parameter whose name
  contains one of `perturbed` is shifted by 0.2 · N(0, 1)."""
  import torch
  torch.manual_seed(0)
  model = model_cls(hf.hf_config(cfg)).eval()
  with torch.no_grad():
    for name, p in model.named_parameters():
      if any(k in name for k in perturbed):
        p.add_(0.2 * torch.randn_like(p))
  return model


def save_hf(model_cls, cfg, directory, safe=True) -> dict:
  """HF `model_cls` for `cfg` (random weights, torch seed 0) saved with `save_pretrained`: its state dict."""
  import torch
  torch.manual_seed(0)
  model = model_cls(hf.hf_config(cfg))
  model.save_pretrained(directory, safe_serialization=safe)
  return state_dict(model)


def state_dict(model) -> dict:
  return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def load_exported(directory) -> dict:
  """The state dict `speechjax convert --to-hf` wrote to `directory`."""
  from safetensors import numpy as safetensors_numpy
  return safetensors_numpy.load_file(os.path.join(directory, "model.safetensors"))


def assert_same_state_dict(got: dict, want: dict):
  assert set(got) == set(want)
  for key, value in want.items():
    np.testing.assert_array_equal(got[key], value, err_msg=key)


def padded_batch(num_samples: int, real: int):
  """(audio [2, num_samples], audio_mask): 0.3 · N(0, 1) (numpy seed 0); the second utterance is `real`
  samples long, zero-padded."""
  rng = np.random.default_rng(0)
  audio = (0.3 * rng.standard_normal((2, num_samples))).astype(np.float32)
  audio_mask = np.arange(num_samples)[None, :] < np.array([[num_samples], [real]])
  return np.where(audio_mask, audio, 0).astype(np.float32), audio_mask


def time_mask(batch: int, frames: int, spans) -> np.ndarray:
  """[batch, frames] bool, True on each (utterance, start, stop) of `spans`."""
  mask = np.zeros((batch, frames), bool)
  for b, start, stop in spans:
    mask[b, start:stop] = True
  return mask


def hf_outputs(model, audio, audio_mask, mask_time=None):
  """The HF model's outputs (hidden states of every layer) on a numpy batch, `mask_time` frames masked."""
  import torch
  kwargs = {} if mask_time is None else {"mask_time_indices": torch.from_numpy(mask_time)}
  with torch.no_grad():
    return model(torch.from_numpy(audio), attention_mask=torch.from_numpy(audio_mask.astype(np.int64)),
                 output_hidden_states=True, **kwargs)


def max_errors(ours, theirs) -> list[float]:
  """Max abs difference of each of our arrays from the matching torch tensor."""
  return [float(np.abs(np.asarray(a) - b.numpy()).max()) for a, b in zip(ours, theirs)]


def run_convert(*argv) -> int:
  """`speechjax convert ARGV...` in this process: its exit status."""
  parser = argparse.ArgumentParser()
  convert.add_arguments(parser)
  return convert.run(parser.parse_args(list(argv)))
