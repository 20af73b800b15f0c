#!/usr/bin/env bash
# bench_tokenizer.sh — encode throughput of daemon/text's tokenizer beside
# the reference (Hugging Face's tokenizers through Node), on the same
# corpus and tokenizer files as tests/text/, single thread, in one run.
#
#   bench/bench_tokenizer.sh DRIVER WORK [SECONDS] [NAME...]
#
# DRIVER: the built tok_driver (cmake --build build --target tok_driver);
# WORK: tests/text's work folder (build/text-conformance; made if missing).
# Prints per tokenizer: MB/s of both, the ratio, load time and memory.
# "ref" encodes one string per call, as ours does, and so includes Node's
# per-call cost (a promise per string); "ref batch" encodes the whole corpus
# in one encodeBatch call per round on one thread (RAYON_NUM_THREADS=1),
# close to the Rust core alone. Load: time and resident memory added.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
driver=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
work=$(mkdir -p "$2" && cd "$2" && pwd)
secs=${3:-5}
shift $(( $# < 3 ? $# : 3 ))
names=("$@")
((${#names[@]})) || names=(gpt2 llama3 llama2)
NNE_TEXT_BUILD_ONLY=1 bash "$here/../tests/text/conformance.sh" "$driver" "$work"
export RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
# Two corpora: all of it (bytes dominated by the five 100 KB strings) and
# only the strings under 1 KB (where the per-call cost shows).
node -e '
  const fs = require("fs");
  const lines = fs.readFileSync(process.argv[1], "utf8").split("\n")
    .filter((l) => l && Buffer.byteLength(l) < 1024);
  fs.writeFileSync(process.argv[2], lines.join("\n") + "\n");
' "$work/corpus.jsonl" "$work/corpus-short.jsonl"
printf '%-14s %10s %10s %7s %10s %7s %10s %10s %9s %9s\n' tokenizer "ours MB/s" "ref MB/s" ratio \
  "ref batch" ratio "ours load" "ref load" "ours MB" "ref MB"
for n in "${names[@]}"; do
 for c in corpus corpus-short; do
  ours=$("$driver" --bench "$work/$n.json" "$work/$c.jsonl" "$secs")
  ref=$(node "$here/bench_tokenizer.js" "$work/npm/node_modules" "$work/$n.json" \
        "$work/$c.jsonl" "$secs")
  node -e '
    const [n, a, b] = process.argv.slice(1).map((x, i) => i ? JSON.parse(x) : x);
    const f = (x, d) => x.toFixed(d);
    console.log(n.padEnd(14), f(a.mb_per_s, 2).padStart(10), f(b.mb_per_s, 2).padStart(10),
      f(a.mb_per_s / b.mb_per_s, 2).padStart(7), f(b.batch_mb_per_s, 2).padStart(10),
      f(a.mb_per_s / b.batch_mb_per_s, 2).padStart(7), (f(a.load_s, 3) + " s").padStart(10),
      (f(b.load_s, 3) + " s").padStart(10), f(a.load_rss_mb, 1).padStart(9), f(b.load_rss_mb, 1).padStart(9));
  ' "$n${c#corpus}" "$ours" "$ref"
 done
done
