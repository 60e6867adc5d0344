speechjax compile --config configs/soundstream.py:16khz --topology v4-8 --config.model.dtype=bfloat16 --config.data.path=/nonexistent 
