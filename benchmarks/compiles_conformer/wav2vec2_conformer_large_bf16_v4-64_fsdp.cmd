speechjax compile --config configs/wav2vec2_conformer.py:large --topology v4-64 --config.model.dtype=bfloat16 "--config.mesh.shape=(1,-1,1)"
