speechjax compile --config configs/hubert.py:large --topology v4-64 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
