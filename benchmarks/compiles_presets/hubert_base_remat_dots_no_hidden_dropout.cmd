speechjax compile --config configs/hubert.py:base --topology v4-8 --config.model.dtype=bfloat16 --config.data.path=/nonexistent --config.model.remat_policy=dots --config.model.hidden_dropout=0.0
