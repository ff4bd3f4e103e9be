// Query terms marked in passages, built from DOM nodes only: a passage is untrusted text
// and is never parsed as HTML: text nodes and <mark> elements only.

const WORD = /[\p{L}\p{M}\p{N}]+/gu;
const UNSPACED = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}]/u;
const COMMON = new Set(
  ("the and for are was but not you with this that from have what how why who when where which " +
    "der die das und ein eine ist mit von den dem des wie was wer wir sie " +
    "les des une est pas pour que qui dans sur par avec aux " +
    "los las del una por que con para como sus " +
    "che per non una del della con come").split(" "),
);

/**
 * The terms of `query` to mark in its hits. Lexical and hybrid queries: the searched words
 * and phrases (a quoted phrase is one term; `-word` and `-"phrase"` are left out, as is
 * OR). Dense queries, whose hits need not contain any query word: words of 3 letters or
 * more but the most common ones, so that marks point at real overlap.
 */
export function queryTerms(query, mode) {
  const terms = [];
  const items = /([+-]?)"([^"]*)"|(\S+)/g;
  for (const [, sign, phrase, word] of query.matchAll(items)) {
    if (phrase !== undefined) {
      if (sign !== "-" && phrase.trim()) terms.push(phrase.trim());
      continue;
    }
    if (word === "OR" || (word.startsWith("-") && word.length > 1)) continue;
    for (const [part] of word.matchAll(WORD)) {
      if (mode === "dense" && (part.length < 3 || COMMON.has(part.toLowerCase())) && !UNSPACED.test(part)) continue;
      terms.push(part);
    }
  }
  return [...new Set(terms)];
}

/** A regular expression matching any of `terms` (longest first, case-insensitive), or null. */
export function termPattern(terms) {
  if (!terms.length) return null;
  const sorted = [...terms].sort((a, b) => b.length - a.length);
  const parts = sorted.map((term) => {
    const escaped = term.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/\s+/g, "\\s+");
    // A word starts at a word boundary, except in scripts written without spaces.
    return UNSPACED.test(term) ? escaped : `(?<![\\p{L}\\p{M}\\p{N}])${escaped}`;
  });
  return new RegExp(parts.join("|"), "giu");
}

/** `text` as a DocumentFragment: text nodes, and a <mark> around each match of `pattern`. */
export function highlighted(text, pattern) {
  const fragment = document.createDocumentFragment();
  let last = 0;
  if (pattern) {
    pattern.lastIndex = 0;
    for (const match of text.matchAll(pattern)) {
      if (!match[0]) continue;
      if (match.index > last) fragment.append(text.slice(last, match.index));
      const mark = document.createElement("mark");
      mark.textContent = match[0];
      fragment.append(mark);
      last = match.index + match[0].length;
    }
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}
