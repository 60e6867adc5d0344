speechjax compile --config configs/hubert.py:xlarge --topology v5e-256 --config.model.dtype=bfloat16 --config.data.path=/nonexistent --config.data.batch_size=512 --config.mesh.shape=(16,16,1)
