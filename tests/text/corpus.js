// corpus.js — the conformance corpus: seeded, so every run tests the same
// strings. Prose in several scripts, emoji and ZWJ sequences, code, runs of
// whitespace, digits, special-token text, contractions, empty strings, a
// few 100 KB strings, and invalid UTF-8 (as bytes, since a JS string cannot
// hold it).
'use strict';

function rng(seed) { // mulberry32: small, seeded, good enough for test data
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WORDS = {
  latin: ['café', 'naïve', 'façade', 'Ærøskøbing', 'résumé', 'jalapeño', 'Straße',
    'über', 'Dvořák', 'Łódź', 'coöperate', 'İstanbul', 'ĳssel', 'ﬁnance', 'the',
    'Eiffel', 'Tower', 'is', 'in', 'Paris', 'city', 'of', 'don\'t', 'I\'LL',
    'it\'S', 'we\'ve', 'they\'re', 'ſtraße', 'Ω', 'e\u0301cole', 'n\u0303', 'A\u030a'],
  cyrillic: ['Привет', 'мир', 'Москва', 'столица', 'России', 'ёжик', 'Їжак',
    'щука', 'объём', 'ПРОГРАММИРОВАНИЕ'],
  greek: ['Καλημέρα', 'κόσμε', 'ΟΔΟΣ', 'Σίσυφος', 'ΣΊΣΥΦΟΣ', 'ὅτι', 'ᾅδης', 'λόγος', 'ΑΣ'],
  cjk: ['東京', '北京市', '人工知能', 'こんにちは', 'カタカナ', '한국어', '안녕하세요',
    '漢字', '中文分词', '〜', '｡', 'ｶﾀｶﾅ'],
  arabic: ['مرحبا', 'بالعالم', 'العربية', 'كِتَابٌ', 'مُحَمَّد', '٠١٢٣٤٥', 'ﻻ'],
  devanagari: ['नमस्ते', 'दुनिया', 'हिन्दी', 'क्षत्रिय', 'संस्कृतम्', '१२३', 'ज़'],
};
const EMOJI = ['😀', '👍🏽', '👨‍👩‍👧‍👦', '🏳️‍🌈', '🇫🇷', '🇯🇵', '1️⃣', '❤️', '🧑🏿‍💻',
  '👩‍❤️‍💋‍👨', '🤷‍♀️', '✨', '🙏', '\u{1F9D1}\u200D\u{1F680}'];
const SPACES = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\t\t',
  '\u00a0', '\u3000', '\u0085', '\u2028', '\u2003', '\u180e', '\u200b', '\ufeff', '    '];
const PUNCT = ['.', ',', '!', '?', ';', ':', '—', '–', '…', '«', '»', '“', '”',
  '(', ')', '[', ']', '{', '}', '"', '\'', '¿', '¡', '、', '。', '・', '«»', '¶', '§'];
const SPECIAL = ['<|endoftext|>', '<|begin_of_text|>', '<|end_of_text|>',
  '<|reserved_special_token_5|>', '<s>', '</s>', '<unk>', '[INST]', '[/INST]',
  '<|endof', '<|eot_id|>', '< s>', '<<s>>', '<|start_header_id|>'];
const CODE = [
  'int main(void) {\n\treturn 0;\n}\n',
  'def f(x):\n    return x ** 2  # square\n',
  'for (let i = 0; i < n; i++) { sum += a[i]; }',
  '#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n',
  'if __name__ == "__main__":\n\tmain()\n',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;',
  '<div class="x">&nbsp;</div>',
  '    }\n  }\n}\n',
  'x=>x*2; y!==z && w||v',
  '$ ls -la ~/src | grep "\\.c$"',
];

function pick(r, a) { return a[Math.floor(r() * a.length)]; }

function randChar(r) {
  const ranges = [[0x41, 0x5a], [0x61, 0x7a], [0xc0, 0x24f], [0x391, 0x3c9],
    [0x410, 0x44f], [0x4e00, 0x9fa5], [0x3041, 0x3096], [0x30a1, 0x30fa],
    [0xac00, 0xd7a3], [0x621, 0x64a], [0x64b, 0x652], [0x905, 0x939], [0x93e, 0x94d],
    [0x30, 0x39], [0x660, 0x669], [0xff10, 0xff19], [0xb2, 0xb3], [0x2160, 0x216f],
    [0x1f600, 0x1f64f], [0x2000, 0x206f], [0xe000, 0xe010], [0x1d400, 0x1d433],
    [0xfb00, 0xfb06], [0x300, 0x36f], [0x1100, 0x11ff], [0x20, 0x7e], [0x80, 0xff]];
  const [lo, hi] = pick(r, ranges);
  return String.fromCodePoint(lo + Math.floor(r() * (hi - lo + 1)));
}

function prose(r, script, nwords) {
  const out = [];
  for (let i = 0; i < nwords; i++) {
    if (i) out.push(r() < 0.85 ? ' ' : pick(r, SPACES));
    out.push(pick(r, WORDS[script]));
    if (r() < 0.15) out.push(pick(r, PUNCT));
  }
  return out.join('');
}

function mixed(r, n) {
  const scripts = Object.keys(WORDS);
  const out = [];
  for (let i = 0; i < n; i++) {
    const k = r();
    if (k < 0.45) out.push(pick(r, WORDS[pick(r, scripts)]));
    else if (k < 0.55) out.push(pick(r, EMOJI));
    else if (k < 0.65) out.push(pick(r, SPACES));
    else if (k < 0.72) out.push(pick(r, PUNCT));
    else if (k < 0.78) out.push(String(Math.floor(r() * 1e9)));
    else if (k < 0.82) out.push(pick(r, SPECIAL));
    else if (k < 0.85) out.push(pick(r, CODE));
    else { let s = ''; for (let j = 0, m = 1 + Math.floor(r() * 6); j < m; j++) s += randChar(r); out.push(s); }
    if (r() < 0.6) out.push(' ');
  }
  return out.join('');
}

// Returns {texts: [string], invalid: [Buffer]}.
function makeCorpus(seed, count) {
  const r = rng(seed);
  const texts = ['', ' ', '  ', '\n', 'a', 'Hello world', 'The Eiffel Tower is in the city of',
    '<|endoftext|>', '<|begin_of_text|>hi', 'hi<s>there</s>', ' <s> ', '<s><s>',
    '\u0085', 'a\u0085b', ' \u0085 ', '\u180e', 'ſ', '\'S', '\'ſ', 'İstanbul', 'ΣΑΣ ΣΑΣ.',
    '１２３４５６７', '²³¹', 'x\r\ny', '\t\t\tindented', '...', '!!!???', 'a\u00a0b', '🫠', '\u{E0001}'];
  const scripts = Object.keys(WORDS);
  while (texts.length < count) {
    const k = r();
    if (k < 0.35) texts.push(prose(r, pick(r, scripts), 1 + Math.floor(r() * 30)));
    else if (k < 0.75) texts.push(mixed(r, 1 + Math.floor(r() * 25)));
    else if (k < 0.80) texts.push(pick(r, CODE) + pick(r, CODE));
    else if (k < 0.85) { let s = ''; for (let j = 0, m = 1 + Math.floor(r() * 8); j < m; j++) s += pick(r, SPACES); texts.push(s + (r() < 0.5 ? 'x' : '')); }
    else if (k < 0.89) { let s = ''; for (let j = 0, m = 1 + Math.floor(r() * 40); j < m; j++) s += String(Math.floor(r() * 10)); texts.push(r() < 0.5 ? s : 'pi ' + s + ' ' + s.slice(0, 3) + ',' + s.slice(3)); }
    else if (k < 0.92) texts.push(pick(r, WORDS[pick(r, scripts)]) + pick(r, SPECIAL) + pick(r, WORDS[pick(r, scripts)]) + ' ' + pick(r, SPECIAL) + ' x');
    else if (k < 0.95) { let s = ''; for (let j = 0, m = 1 + Math.floor(r() * 12); j < m; j++) s += pick(r, EMOJI) + (r() < 0.3 ? ' ' : ''); texts.push(s); }
    else if (k < 0.98) { let s = ''; for (let j = 0, m = 1 + Math.floor(r() * 30); j < m; j++) s += randChar(r); texts.push(s); }
    else texts.push('');
  }
  // A few 100 KB strings: prose, one repeated character, whitespace, CJK.
  const big = (f) => { let s = ''; while (Buffer.byteLength(s) < 100000) s += f(); return s; };
  texts.push(big(() => mixed(r, 50) + ' '));
  texts.push('a'.repeat(100000));
  texts.push(big(() => pick(r, SPACES)));
  texts.push(big(() => pick(r, WORDS.cjk)));
  texts.push(big(() => prose(r, 'devanagari', 20) + '\n'));
  const invalid = [[0x80], [0xff], [0xc0, 0xaf], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80],
    [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0xe2, 0x82], [0x61, 0xc3],
    [0x61, 0x62, 0xfe, 0x63], [0xf0, 0x9f, 0x98], [0xc3, 0x28], [0xa0, 0xa1]].map(Buffer.from);
  for (let i = 0; i < 40; i++) {
    const pre = Buffer.from(prose(r, pick(r, scripts), 3));
    invalid.push(Buffer.concat([pre, Buffer.from([0x80 + Math.floor(r() * 0x80)]), pre]));
  }
  return { texts, invalid };
}

module.exports = { makeCorpus, rng };
