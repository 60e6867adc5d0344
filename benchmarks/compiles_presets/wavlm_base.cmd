speechjax compile --config configs/wavlm.py:base --topology v4-8 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
