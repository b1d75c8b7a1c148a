#!/usr/bin/env bash
# Fetches the published bias benchmark files that patchsweep vendors in engine/data/benchmarks/
# from their original sources, at the pinned commits, into DEST (default: benchmark-data/ at the
# repository root, git-ignored), and checks each file against the sha256 of the vendored copy.
#
#   scripts/fetch-benchmarks.sh [DEST]
#
# CrowS-Pairs: github.com/nyu-mll/crows-pairs @ 8aaac11, data/crows_pairs_anonymized.csv
#   (CC BY-SA 4.0, stated in its README; the repository has no licence file, so DEST gets the
#   vendored attribution note as crows-pairs/LICENSE).
# WinoBias: github.com/uclanlp/corefBias @ 0bce984, WinoBias/wino/... (MIT, LICENSE).
# The Bolukbasi professions list has its own script: engine/data/professions-bolukbasi/fetch.sh.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${1:-$root/benchmark-data}"
crows="https://raw.githubusercontent.com/nyu-mll/crows-pairs/8aaac11c485473159ec9328a65253a5be9a479dc"
wino="https://raw.githubusercontent.com/uclanlp/corefBias/0bce984dd081bbc10b0622f326727a024c607895"

mkdir -p "$dest/crows-pairs" "$dest/winobias"
fetch() { # URL FILE
  echo "fetching $1"
  curl -fsSL --retry 3 "$1" -o "$2.part" && mv "$2.part" "$2"
}

fetch "$crows/data/crows_pairs_anonymized.csv" "$dest/crows-pairs/crows_pairs_anonymized.csv"
cp "$root/engine/data/benchmarks/crows-pairs/LICENSE" "$dest/crows-pairs/LICENSE"
fetch "$wino/LICENSE" "$dest/winobias/LICENSE"
for kind in pro anti; do
  for type in 1 2; do
    for split in dev test; do
      f="${kind}_stereotyped_type${type}.txt.${split}"
      fetch "$wino/WinoBias/wino/data/$f" "$dest/winobias/$f"
    done
  done
done
for f in male_occupations.txt female_occupations.txt; do
  fetch "$wino/WinoBias/wino/data/$f" "$dest/winobias/$f"
done
for f in generalized_swaps.txt extra_gendered_words.txt; do
  fetch "$wino/WinoBias/wino/$f" "$dest/winobias/$f"
done

cd "$dest"
sha256sum -c --quiet <<'SUMS'
81679aba3ed766cf5bfa36f063e448c9e344da7351508776fe38a038f2d60608  crows-pairs/LICENSE
dfb36986ce0502abbaf7055b9176da3d08d48e07df1251991b5dfbcbceab9d0c  crows-pairs/crows_pairs_anonymized.csv
fdc813af7e33d0d7852c742a8a3983934d3c1c770014062246883c194c363830  winobias/LICENSE
a4e0ebae344e78b56f657a42e8ae684b9db7747d177c5e7149c0907ebb7f3bf6  winobias/anti_stereotyped_type1.txt.dev
331db5bd74bfefebf146a60b67645152a4a1991570d2a56f57154103ac361dd2  winobias/anti_stereotyped_type1.txt.test
763ad829ad724f9a85ead689ba8ca69072020cb1238def6210f0fc6a47b97e59  winobias/anti_stereotyped_type2.txt.dev
336571ac1ea8c06cd2aba8e5dd2bd98e00acc0c48da3e4ec5ec7e54eb2633a8f  winobias/anti_stereotyped_type2.txt.test
728554ebab711703e37dc92d9d14acde6e5bfcc28fa5b62b90b34110be7bd854  winobias/extra_gendered_words.txt
693bff12286c2c1d46c7d4d45a44a631574710c30b39c1a3001bb7bdebb44ed8  winobias/female_occupations.txt
4d093db96d4386318ec9aafc3cebc458ead06bb02ac81770e278905fbdd4341e  winobias/generalized_swaps.txt
6b82d88847b69d56d207a0c396e9830b031890de585e916e6b4e9bc50672657e  winobias/male_occupations.txt
dd55a0d220fe4c0ceb63dd4648223fb4fe1a58d5ad95c116a002ad24b0e292a5  winobias/pro_stereotyped_type1.txt.dev
db7838907238a758eeb5779e48f38c013b892910d6fe864456c59f04245c6689  winobias/pro_stereotyped_type1.txt.test
8f0250de723cea9328e3eaf7169e07936f01aa5909ce7aa580db66eb803f4e86  winobias/pro_stereotyped_type2.txt.dev
ea1c1fd94fa612e3cc44d7fa3cc4cb76021bb63fdf94f9826f430051e9052438  winobias/pro_stereotyped_type2.txt.test
SUMS
echo "benchmark files in $dest match the vendored copies (engine/data/benchmarks/)"
