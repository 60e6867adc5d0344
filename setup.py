"""speechjax: JAX/Flax, TPU-first pretraining of speech and audio foundation models."""
from setuptools import find_packages, setup

# Version ranges are the ones the test suite runs against (see .ci/run).
INSTALL_REQUIRES = [
    "jax>=0.10,<0.11",
    "flax>=0.12,<0.13",
    "optax>=0.2.8,<0.3",
    "orbax-checkpoint>=0.12,<0.13",
    "tensorflow-cpu>=2.20,<2.22",
    "tensorboard>=2.20,<2.22",
    "tensorflow-datasets>=4.9.9,<5",
    "librosa>=0.11,<0.12",
    "ml-collections>=1.1,<2",
    "chex>=0.1.90,<0.2",
    "soundfile>=0.13,<0.15",
    "espeakng-loader>=0.2.4,<0.3",
    "wordfreq>=3.1,<4",
    "tqdm>=4.66",
    "matplotlib>=3.8",          # speechjax analyze plots
    "importlib_resources>=6",   # tensorflow-datasets needs it (through etils[epath]) to build data sets
    "numpy>=2.0,<3",
]

EXTRAS = {
    "test": ["pytest>=8", "pytest-timeout>=2.3", "pytest-xdist>=3.8", "scikit-learn>=1.5", "jiwer>=3.0",
             "nbclient>=0.10", "nbformat>=5.9", "ipykernel>=6.29"],   # tests/test_notebook.py
    "interop": ["torch==2.13.0", "transformers>=4.57,<5", "kaldi-native-fbank>=1.20"],
    # benchmarks/codec_quality.py (Opus rows: PyAV, whose wheels bundle libopus) and benchmarks/codec.py (with the interop extra)
    # the TPU compiler, for `speechjax compile` on any machine (no TPU needed) and for running on TPU VMs
    "tpu": ["jax[tpu]==0.10.2"],
    "codec": ["pesq>=0.0.4", "pystoi>=0.4.1", "vector-quantize-pytorch>=1.20", "av>=14"],
}

setup(
    name="speechjax",
    version="0.1.0",
    description=__doc__,
    # configs/ stays at the top of the checkout and ships inside the package (speechjax/configs in the wheel)
    packages=find_packages(include=["speechjax", "speechjax.*"]) + ["speechjax.configs"],
    package_dir={"speechjax.configs": "configs"},
    python_requires=">=3.11",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["speechjax=speechjax.cli:entry"]},
)
