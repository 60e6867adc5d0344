"""AudioLM stage 1 (semantic LM) vs a bigram model: next-token accuracy on held-out speakers.

    python benchmarks/semantic_lm_vs_bigram.py --data LABELED_RECORDS --labels km --rate 100 --vocab 100 \
        --steps 1000 --workdir /tmp/semantic_lm [--config.x.y=v ...]

Trains `configs/token_lm.py:semantic_tiny` on `labels/<labels>` of the train split (or reuses a finished
run in --workdir), then scores both models on the same positions of the test split (utterances cropped
from their start, consecutive duplicates removed, BOS first): the LM's argmax vs the bigram's most frequent
successor of the previous token, counted on whole train-split utterances (deduplicated the same way).
Prints one JSON line.
"""
import argparse
import json
import os

import jax
import numpy as np
import tensorflow as tf

from speechjax import config as config_lib
from speechjax.data import pipeline, records
from speechjax.models import audiolm
from speechjax.train import trainer as trainer_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def bigram_table(data_dir: str, split: str, name: str, vocab: int) -> np.ndarray:
  """[1 + vocab] most frequent next vocabulary id after each id (BOS = 0), from deduplicated utterances."""
  counts = np.zeros([1 + vocab, 1 + vocab], np.int64)
  files = records.split_files(data_dir, records.read_meta(data_dir), split)
  ds = tf.data.TFRecordDataset(files).map(lambda r: records.parse_example(r, (name,))[f"labels/{name}"])
  for labels in ds.as_numpy_iterator():
    labels = labels[labels >= 0]
    runs = labels[np.r_[True, labels[1:] != labels[:-1]]] if labels.size else labels
    ids = np.r_[audiolm.BOS, runs + 1]
    np.add.at(counts, (ids[:-1], ids[1:]), 1)
  return counts.argmax(1)


def evaluate(trainer, bigram: np.ndarray) -> dict:
  """Accuracy of the LM and the bigram over every predicted position of one pass of the eval split."""
  task, cfg = trainer.task, trainer.cfg
  data = pipeline.from_config(cfg.data, False)
  lm_fn = jax.jit(lambda params, tokens: task.model.apply({"params": params}, tokens[:, :-1]).argmax(-1))
  sequences = jax.jit(task.sequences)
  hits = {"lm": 0, "bigram": 0}
  total = 0
  with trainer.context():
    for batch in data:
      fields = {k: v for k, v in batch.items() if k.startswith("labels/")}
      tokens, target, _ = jax.device_get(sequences(fields))
      weight = target[:, 1:]
      lm = np.asarray(lm_fn(trainer.state.params, tokens))
      nxt = tokens[:, 1:]
      hits["lm"] += int(((lm == nxt) & weight).sum())
      hits["bigram"] += int(((bigram[tokens[:, :-1]] == nxt) & weight).sum())
      total += int(weight.sum())
  return {f"{k}_accuracy": v / total for k, v in hits.items()} | {"eval_tokens": total}


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data", required=True)
  parser.add_argument("--labels", default="km")
  parser.add_argument("--rate", type=int, default=100, help="label frame rate (Hz)")
  parser.add_argument("--vocab", type=int, default=100, help="label classes")
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--workdir", required=True)
  args, overrides = parser.parse_known_args()
  cfg = config_lib.load(f"{REPO}/configs/token_lm.py:semantic_tiny", [
      f"--config.data.path={args.data}", f"--config.data.labels=('{args.labels}',)",
      f"--config.task.semantic_labels={args.labels}", f"--config.task.semantic_rate={args.rate}",
      f"--config.task.semantic_vocab={args.vocab}", f"--config.model.vocab_size={args.vocab + 1}",
      f"--config.train.num_steps={args.steps}", "--config.train.eval_every=0", *overrides])
  trainer = trainer_lib.Trainer(cfg, args.workdir)
  last = trainer.run()
  result = evaluate(trainer, bigram_table(args.data, cfg.data.train_split, args.labels, args.vocab))
  print(json.dumps({"steps": args.steps, "train_loss": last.get("loss"), **result}))


if __name__ == "__main__":
  main()
