"""Model-independent evaluation: CTC decoding (`ctc_decode`), error rates (`error_rate`) and layer-wise
CCA analysis (`cca`). Pure numpy (plus a jittable greedy decoder); see docs/evaluation.md."""
