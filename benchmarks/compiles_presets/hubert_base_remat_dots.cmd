speechjax compile --config configs/hubert.py:base --topology v4-8 --config.model.dtype=bfloat16 --config.data.path=/nonexistent --config.model.remat_policy=dots
