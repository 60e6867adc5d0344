speechjax compile --config configs/token_lm.py:semantic --topology v4-32 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
