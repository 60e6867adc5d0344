speechjax compile --config configs/w2v_bert.py:xl --topology v4-64 --config.model.dtype=bfloat16 "--config.mesh.shape=(1,-1,1)"
