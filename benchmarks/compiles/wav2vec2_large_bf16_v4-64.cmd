speechjax compile --config configs/wav2vec2.py:large --topology v4-64 --config.model.dtype=bfloat16 --config.data.batch_size=64 --config.train.rng_impl=threefry2x32 --config.data.path=/nonexistent
