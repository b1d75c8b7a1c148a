#!/usr/bin/env bash
# The demo of README.md: fetches the SmolLM2 demo model if absent and runs it on a
# professions prompt, printing the tokens and the top next-token logits.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/fetch-demo-model.sh
cargo build --release --quiet
for prompt in "The nurse said that" "The engineer said that"; do
  ./target/release/patchsweep logits --model gguf:models/SmolLM2-135M-Instruct.Q4_1.gguf --prompt "$prompt" --top-k 8
  echo
done
