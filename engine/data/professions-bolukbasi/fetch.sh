#!/usr/bin/env bash
# Fetches the Bolukbasi et al. professions list and its licence from their source (the code of
# Vig et al. 2020 at commit 6e4bdd1) into this folder, and checks them against the vendored copy.
set -euo pipefail
cd "$(dirname "$0")"
base="https://raw.githubusercontent.com/sebastianGehrmann/CausalMediationAnalysis/6e4bdd13695f53b057729b18b4ad4bbdf1cb1309"
curl -fsSL "$base/experiment_data/professions.json" -o professions.json
curl -fsSL "$base/LICENSE" -o LICENSE
sha256sum -c <<'SUMS'
32cc82c7761e7cfb14e37e06dc1aa9f758bc8441f79ca7288996d3fc7c24639a  professions.json
9bbeac5792b54562a2631d12f16650764915e6ac3b0f4df2e8466ecf5e7cd8ab  LICENSE
SUMS
