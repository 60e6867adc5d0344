speechjax compile --config configs/wav2vec2.py:large --topology v4-64 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
