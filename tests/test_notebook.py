"""notebooks/speechjax_colab.ipynb runs top to bottom on CPU against a tiny wav2vec 2.0 checkpoint."""
import os

import nbformat
from nbclient import NotebookClient

from finetune.test_ctc import pretrained  # noqa: F401  (module fixture: a 2-step tiny wav2vec 2.0)

NOTEBOOK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks",
                        "speechjax_colab.ipynb")


def test_notebook_runs(pretrained, monkeypatch, tmp_path):  # noqa: F811
  monkeypatch.setenv("SPEECHJAX_CKPT", pretrained)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  NotebookClient(notebook, timeout=120, kernel_name="python3",
                 resources={"metadata": {"path": str(tmp_path)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
  text = "".join(o.get("text", "") for o in outputs)
  assert "task pretrain_w2v2" in text and "(3, " in text, text   # tiny: transformer input + 2 layers
  assert sum("image/png" in o.get("data", {}) for o in outputs) == 2   # layer features, norms
