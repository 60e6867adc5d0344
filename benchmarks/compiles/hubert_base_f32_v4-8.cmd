speechjax compile --config configs/hubert.py:base --topology v4-8 --config.data.batch_size=32
