"""Shared by the token-LM task tests: a model small enough for CPU runs of a few dozen steps."""

SMALL_MODEL = ["--config.model.hidden_size=32", "--config.model.num_layers=1", "--config.model.num_heads=2",
               "--config.model.intermediate_size=64", "--config.optim.warmup_steps=5",
               "--config.optim.lr=1e-2", "--config.data.batch_size=8"]
