speechjax compile --config configs/hubert.py:base --topology v4-8 --config.data.batch_size=32 --config.train.rng_impl=threefry2x32 --config.data.path=/nonexistent
