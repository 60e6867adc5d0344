#!/usr/bin/env bash
# docs/scaling.md's per-preset table: every pretraining preset's train step compiled by the TPU compiler
# (libtpu on this CPU: `pip install -e ".[tpu]"`) for its target slice, bf16, at the preset's own batch and
# crop. Writes <row>.json and the command as <row>.cmd here;
# `python benchmarks/compile_table.py benchmarks/compiles_presets` prints the table. Run one row: `bash benchmarks/compiles_presets/run.sh hubert_base`. No data is read (label rates
# come from the task config), so --config.data.path points nowhere.
set -euo pipefail
HERE=$(dirname "$0")
declare -A ROWS=(
  [wav2vec2_base]="configs/wav2vec2.py:base v4-8"
  [hubert_base]="configs/hubert.py:base v4-8"
  [hubert_base_remat_dots]="configs/hubert.py:base v4-8 --config.model.remat_policy=dots"
  [hubert_base_remat_dots_no_hidden_dropout]="configs/hubert.py:base v4-8 --config.model.remat_policy=dots --config.model.hidden_dropout=0.0"
  [wavlm_base]="configs/wavlm.py:base v4-8"
  [wav2vec2_large]="configs/wav2vec2.py:large v4-64"
  [hubert_large]="configs/hubert.py:large v4-64"
  [wavlm_large]="configs/wavlm.py:large v4-64"
  [hubert_xlarge]="configs/hubert.py:xlarge v5e-256 --config.data.batch_size=512 --config.mesh.shape=(16,16,1)"
  [soundstream_16khz]="configs/soundstream.py:16khz v4-8"
  [soundstream_24khz]="configs/soundstream.py:24khz v4-8"
  [audiolm_semantic]="configs/token_lm.py:semantic v4-32"
  [audiolm_coarse]="configs/token_lm.py:coarse v4-32"
  [audiolm_fine]="configs/token_lm.py:fine v4-32"
  [soundstorm]="configs/token_lm.py:soundstorm v4-32"
)
ORDER=(wav2vec2_base hubert_base hubert_base_remat_dots hubert_base_remat_dots_no_hidden_dropout wavlm_base wav2vec2_large hubert_large wavlm_large hubert_xlarge
       soundstream_16khz soundstream_24khz audiolm_semantic audiolm_coarse audiolm_fine soundstorm)
for row in "${@:-${ORDER[@]}}"; do
  read -r spec topology extra <<< "${ROWS[$row]}"
  cmd="speechjax compile --config $spec --topology $topology --config.model.dtype=bfloat16 --config.data.path=/nonexistent $extra"
  echo "$cmd" > "$HERE/$row.cmd"
  $cmd --json "$HERE/$row.json"
done
