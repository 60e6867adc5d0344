"""notebooks/speechjax_colab.ipynb runs top to bottom on CPU against tiny checkpoints made in the test
(random weights): a HuBERT encoder, a SoundStream codec, and the three AudioLM stages."""
import json
import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import audiolm_parts

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks",
                        "speechjax_colab.ipynb")


@pytest.mark.fast_compile   # random-weight checkpoints, every program run once or twice: the kernel too
def test_notebook_runs(monkeypatch, tmp_path):
  parts = audiolm_parts.build(tmp_path / "parts")
  monkeypatch.setenv("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
  monkeypatch.setenv("SPEECHJAX_CKPT", parts["hubert"])
  monkeypatch.setenv("SPEECHJAX_CODEC", parts["codec"])
  monkeypatch.setenv("SPEECHJAX_GENERATE", json.dumps({**parts, "layer": 2}))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(notebook, timeout=300, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  text = "".join(o.get("text", "") for o in outputs)
  assert "task pretrain_hubert" in text and "(3, " in text, text   # tiny: transformer input + 2 layers
  assert "n_q=1: 0.20 kbps" in text and "n_q=4: 0.80 kbps" in text, text   # 4 × 16 codes at 50 Hz
  assert "generated 1.00 s (prompt + continuation)" in text, text
  assert sum("image/png" in o.get("data", {}) for o in outputs) == 3   # layer features, norms, spectrogram
  assert sum("text/html" in o.get("data", {}) for o in outputs) == 4   # 3 codec round trips + generation
