// bench_tokenizer.js — the reference's side of bench_tokenizer.sh: Hugging
// Face's tokenizers (through @anush008/tokenizers) encoding the corpus's
// strings one at a time, on one thread, for about SECONDS, then as one
// batch per round; one JSON line.
//   node bench_tokenizer.js MODULES TOKENIZER.json CORPUS.jsonl SECONDS
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [mods, file, corpus, seconds] = process.argv.slice(2);
  const { Tokenizer } = require(path.join(mods, '@anush008/tokenizers'));
  const texts = fs.readFileSync(corpus, 'utf8').split('\n').filter((l) => l)
    .map((l) => JSON.parse(l)).filter((o) => 's' in o).map((o) => o.s);
  const rss0 = process.memoryUsage().rss;
  let t0 = process.hrtime.bigint();
  const tok = Tokenizer.fromFile(file);
  const load = Number(process.hrtime.bigint() - t0) / 1e9;
  const rss1 = process.memoryUsage().rss;
  let bytes = 0, tokens = 0, rounds = 0, el = 0;
  t0 = process.hrtime.bigint();
  do {
    for (const s of texts) {
      const e = await tok.encode(s, null, { addSpecialTokens: true });
      tokens += e.getLength();
      bytes += Buffer.byteLength(s);
    }
    rounds++;
    el = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (el < Number(seconds));
  // The same strings in one encodeBatch call per round (RAYON_NUM_THREADS=1
  // keeps it on one thread): the Rust core without Node's per-call cost.
  let bbytes = 0, bel = 0;
  const all = texts.reduce((a, s) => a + Buffer.byteLength(s), 0);
  t0 = process.hrtime.bigint();
  do {
    await tok.encodeBatch(texts, { addSpecialTokens: true });
    bbytes += all;
    bel = Number(process.hrtime.bigint() - t0) / 1e9;
  } while (bel < Number(seconds));
  console.log(JSON.stringify({ impl: 'reference', load_s: +load.toFixed(3),
    load_rss_mb: +((rss1 - rss0) / 1048576).toFixed(1), bytes, tokens, rounds,
    seconds: +el.toFixed(3), mb_per_s: +(bytes / el / 1e6).toFixed(2),
    batch_mb_per_s: +(bbytes / bel / 1e6).toFixed(2) }));
}
main().catch((e) => { console.error(e); process.exit(1); });
