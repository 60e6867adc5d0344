"""TFDS builders of speechjax; importing this package registers them with `tfds`."""
from speechjax.data.tfds.synth_speech import SynthSpeech

__all__ = ["SynthSpeech"]
