#!/usr/bin/env bash
# The demo of README.md: fetches the SmolLM2 demo model if absent and runs a professions
# sweep end-to-end on the embedded default (SQLite file patchsweep-demo.db, one local
# worker) with its debias section, printing the summary; then a query over the results, and
# the pictures (heatmaps, scatter, debias bars) and an HTML report in demo-pictures/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-demo-model.sh
cargo build --release --quiet
db="sqlite://patchsweep-demo.db"
./target/release/patchsweep run examples/smollm2-professions.toml --db "$db"
echo
echo "normalized effect of the residual stream by layer and position label (cells_v; first 12 rows):"
./target/release/patchsweep query --db "$db" "SELECT layer, position_label, pairs_used, ROUND(CAST(normalized AS NUMERIC), 3) AS normalized
  FROM cells_v WHERE experiment = 'components' AND component = 'resid_pre'
    AND sweep_id = (SELECT MAX(id) FROM sweeps)
  ORDER BY layer, position_label LIMIT 12"
./target/release/patchsweep plot --db "$db" --out demo-pictures
./target/release/patchsweep report --db "$db" --out demo-pictures/report.html
echo "pictures and report: demo-pictures/ (open demo-pictures/report.html)"
