#!/usr/bin/env bash
# conformance.sh — daemon/text's tokenizer against Hugging Face's tokenizers
# (tests/text/README.md).
#
#   tests/text/conformance.sh DRIVER WORK [NAME...]
#
# DRIVER is the built tok_driver; WORK a folder under the build tree, where
# the npm packages are cached (installed on the first run, offline after)
# and the tokenizers, corpus and outputs are written. NAMEs pick tokenizers
# (gpt2 llama3 llama2 mistral mix words; default all).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
driver=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mkdir -p "$2" && cd "$2" && pwd)
shift 2
cache=$work/npm
# Exact versions: the reference must not move under the test.
pkgs=(@anush008/tokenizers@0.6.0 gpt-3-encoder@1.1.4 llama3-tokenizer-js@1.2.0)
if [[ ! -f $cache/.installed ]]; then
  command -v npm >/dev/null || { echo "conformance: npm is missing (deploy/setup.sh installs it)" >&2; exit 1; }
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-audit --no-fund --no-save --silent "${pkgs[@]}"
  touch "$cache/.installed"
fi
# The reference encodes one string at a time on this thread, as ours does.
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
exec node "$here/conformance.js" "$cache/node_modules" "$work" "$driver" "$@"
