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
echo "mean normalized effect of the residual stream by layer and position label (first 12 rows):"
./target/release/patchsweep query --db "$db" "SELECT layer, position_label, ROUND(CAST(AVG(normalized) AS NUMERIC), 3) AS mean_normalized
  FROM effects_v WHERE experiment = 'components' AND component = 'resid_pre'
    AND sweep_id = (SELECT MAX(id) FROM sweeps)
  GROUP BY layer, position_label ORDER BY layer, position_label LIMIT 12"
./target/release/patchsweep plot --db "$db" --out demo-pictures
./target/release/patchsweep report --db "$db" --out demo-pictures/report.html
echo "pictures and report: demo-pictures/ (open demo-pictures/report.html)"
