speechjax compile --config configs/wav2vec2.py:base --topology v4-8 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
