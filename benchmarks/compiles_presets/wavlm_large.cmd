speechjax compile --config configs/wavlm.py:large --topology v4-64 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
