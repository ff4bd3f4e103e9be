// The search page: a query box over GET /search, its hits, and their documents
// (GET /documents/{id}). Every text from the index reaches the page as text nodes only.
import { ApiError, AuthError, getJSON } from "./api.js";
import { highlighted, queryTerms, termPattern } from "./highlight.js";
import { askForToken, serverAuth, tokenStore } from "./token.js";

const $ = (id) => document.getElementById(id);
const ui = {
  summary: $("summary"),
  forget: $("forget"),
  tokenForm: $("token-form"),
  search: $("search"),
  q: $("q"),
  lang: $("lang"),
  mode: $("mode"),
  k: $("k"),
  status: $("status"),
  problem: $("problem"),
  results: $("results"),
  dialog: $("document"),
  docMeta: $("document-meta"),
  docTitle: $("document-title"),
  docFields: $("document-fields"),
  docText: $("document-text"),
  docClose: $("document-close"),
};

const SCORES = {
  dense: ["similarity", "Cosine similarity of the query and the passage (-1 to 1)"],
  lexical: ["relevance", "Summed rarity of the query's words found in the passage (comparable within one query)"],
  hybrid: ["fused", "Reciprocal rank fusion of the meaning and the word rankings"],
};
const languageNames = (() => {
  try {
    return new Intl.DisplayNames([navigator.language, "en"], { type: "language" });
  } catch {
    return null;
  }
})();

let needsToken = false;
let statsNeeded = false; // the figures were hidden while the token was asked for again
let searchCount = 0;
let opener = null;

/** "French" for "fr" (in the browser's language), the code itself where unknown. */
function languageName(code) {
  if (!code || code === "unknown") return "unknown language";
  try {
    const name = languageNames && languageNames.of(code);
    return name && name !== code ? name : code;
  } catch {
    return code;
  }
}

function hueOf(code) {
  let hash = 0;
  for (const ch of code || "?") hash = (hash * 31 + ch.codePointAt(0)) % 360;
  return hash;
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function badge(code) {
  const node = element("span", "badge", (code || "?").toUpperCase());
  node.title = languageName(code);
  node.style.setProperty("--hue", String(hueOf(code)));
  return node;
}

function setStatus(text) {
  ui.status.textContent = text;
}

/** Say what went wrong (`text`, the server's own words where it gave some); "" hides it. */
function showProblem(text, status = 0) {
  ui.problem.hidden = !text;
  if (!text) {
    ui.problem.replaceChildren();
    return;
  }
  const what = status >= 400 && status < 500 ? "The server refused this request: " : "Something went wrong: ";
  ui.problem.replaceChildren(element("strong", "", what), text.charAt(0).toUpperCase() + text.slice(1));
}

function problemOf(error) {
  return error instanceof ApiError ? [error.message, error.status] : [String(error), 0];
}

/** Run `call` (an API request); on 401 ask for the token (again) and retry. */
async function withToken(call) {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof AuthError)) throw error;
      const hadOne = tokenStore.get() !== null;
      needsToken = true;
      await unlock(hadOne ? "The server refused that token. Check it and enter it again." : "");
      statsNeeded = true;
    }
  }
}

/** Hide everything of the index and ask for the token until one is entered. */
async function unlock(message = "") {
  tokenStore.forget();
  if (ui.dialog.open) ui.dialog.close();
  ui.search.hidden = true;
  ui.forget.hidden = true;
  ui.results.replaceChildren();
  ui.summary.textContent = "";
  setStatus("");
  showProblem("");
  await askForToken(ui.tokenForm, message);
  ui.search.hidden = false;
  ui.forget.hidden = false;
}

async function loadStats() {
  statsNeeded = false;
  const stats = await withToken(() => getJSON("/stats"));
  const languages = Object.entries(stats.languages || {}).filter(([code]) => code !== "unknown");
  const parts = [
    `${stats.documents.toLocaleString()} document${stats.documents === 1 ? "" : "s"}`,
    `${stats.chunks.toLocaleString()} passage${stats.chunks === 1 ? "" : "s"}`,
    `${languages.length} language${languages.length === 1 ? "" : "s"}`,
    stats.model,
  ];
  ui.summary.replaceChildren(...parts.flatMap((part, i) => [...(i ? [" · "] : []), element("span", "", part)]));
  const chosen = ui.lang.value;
  ui.lang.replaceChildren(new Option("All languages", ""));
  languages
    .map(([code, count]) => [code, count, languageName(code)])
    .sort((a, b) => a[2].localeCompare(b[2]))
    .forEach(([code, count, name]) => ui.lang.append(new Option(`${name} (${code}) · ${count}`, code)));
  ui.lang.value = [...ui.lang.options].some((o) => o.value === chosen) ? chosen : "";
}

function formParams() {
  return { q: ui.q.value.trim(), lang: ui.lang.value, mode: ui.mode.value, k: ui.k.value };
}

function fillForm(params) {
  ui.q.value = params.get("q") || "";
  for (const [name, select] of [["lang", ui.lang], ["mode", ui.mode], ["k", ui.k]]) {
    const value = params.get(name);
    if (value !== null && [...select.options].some((o) => o.value === value)) select.value = value;
  }
}

async function runSearch({ remember = true } = {}) {
  const params = formParams();
  if (!params.q) {
    setStatus("Type a question or some words first.");
    ui.q.focus();
    return;
  }
  const mine = ++searchCount;
  if (remember) {
    const url = `?${new URLSearchParams(params)}`;
    if (url !== window.location.search) window.history.pushState(null, "", url);
  }
  setStatus("Searching…");
  showProblem("");
  ui.results.setAttribute("aria-busy", "true");
  try {
    const body = await withToken(() => getJSON("/search", params));
    if (mine !== searchCount) return; // a newer search has started
    render(body, params);
    if (statsNeeded) loadStats().catch((error) => showProblem(...problemOf(error)));
  } catch (error) {
    if (mine !== searchCount) return;
    ui.results.replaceChildren();
    setStatus("");
    showProblem(...problemOf(error));
  } finally {
    ui.results.removeAttribute("aria-busy");
  }
}

function render(body, params) {
  const hits = body.hits;
  const where = params.lang ? ` in ${languageName(params.lang)}` : "";
  if (!hits.length) {
    ui.results.replaceChildren();
    const hint = params.lang || params.mode !== "dense" ? " Try all languages, or the mode “Meaning”." : "";
    setStatus(`No passages${where} match “${params.q}”.${hint}`);
    return;
  }
  const took = body.took_ms < 1000 ? `${Math.round(body.took_ms)} ms` : `${(body.took_ms / 1000).toFixed(1)} s`;
  setStatus(`${hits.length} passage${hits.length === 1 ? "" : "s"}${where} for “${params.q}” · ${took}`);
  const pattern = termPattern(queryTerms(params.q, params.mode));
  const top = Math.max(...hits.map((h) => h.score), 1e-9);
  const [label, explanation] = SCORES[params.mode] || SCORES.dense;
  ui.results.replaceChildren(
    ...hits.map((hit, rank) => renderHit(hit, rank, { pattern, top, label, explanation, params })),
  );
}

function renderHit(hit, rank, { pattern, top, label, explanation, params }) {
  const item = element("li", "hit");
  const head = element("div", "hit-head");
  head.append(badge(hit.lang), element("span", "language", languageName(hit.lang)));
  const score = element("span", "score");
  score.title = explanation;
  const meter = element("span", "meter");
  const fill = element("span", "fill");
  fill.style.setProperty("--fill", `${Math.max(0, Math.min(1, hit.score / top)) * 100}%`);
  meter.append(fill);
  score.append(element("span", "score-label", label), element("span", "score-value", formatScore(hit.score, params.mode)), meter);
  head.append(score);

  const title = element("h2", "hit-title");
  const open = element("button", "open", hit.source);
  open.type = "button";
  open.setAttribute("aria-label", `Open the document ${hit.source} (result ${rank + 1})`);
  open.addEventListener("click", () => openDocument(hit, params, open));
  title.append(open);
  if (hit.doc_id !== hit.source) title.append(element("span", "doc-id", hit.doc_id));

  const passage = element("p", "passage");
  passage.lang = hit.lang && hit.lang !== "unknown" ? hit.lang : "";
  passage.append(highlighted(hit.text, pattern));

  const foot = element("div", "hit-foot");
  // Which searches found it, where two were fused: "dense + lexical", or one of them.
  foot.append(element("span", "signals", params.mode === "hybrid" ? (hit.signals || []).join(" + ") : ""));
  const more = element("button", "link", "Open document →");
  more.type = "button";
  more.tabIndex = -1; // the title is the one stop per result; this is for the mouse
  more.addEventListener("click", () => openDocument(hit, params, open));
  foot.append(more);

  item.append(head, title, passage, foot);
  return item;
}

function formatScore(score, mode) {
  return mode === "hybrid" ? score.toFixed(4) : score.toFixed(3);
}

function documentPath(docId) {
  return `/documents/${docId.split("/").map(encodeURIComponent).join("/")}`;
}

/** The document's text from its chunks (in order; overlaps written once), with the hit's chunk marked. */
function documentText(doc, hit, pattern) {
  const fragment = document.createDocumentFragment();
  const chunks = [...doc.chunks].sort((a, b) => a.start - b.start);
  let end = 0;
  let current = null;
  for (const chunk of chunks) {
    if (chunk.end <= end) continue;
    const skip = Math.max(0, end - chunk.start);
    if (chunk.start > end && end > 0) fragment.append(" ");
    const text = chunk.text.slice(skip);
    if (chunk.chunk_id === hit.chunk_id && chunks.length > 1) {
      current = element("span", "current");
      current.append(highlighted(text, pattern));
      fragment.append(current);
    } else {
      fragment.append(highlighted(text, pattern));
    }
    end = chunk.end;
  }
  return { fragment, current };
}

async function openDocument(hit, params, from) {
  opener = from;
  ui.docMeta.replaceChildren(badge(hit.lang), element("span", "", languageName(hit.lang)));
  ui.docTitle.textContent = hit.source;
  ui.docFields.replaceChildren();
  ui.docText.replaceChildren(element("p", "loading", "Loading the document…"));
  if (!ui.dialog.open) ui.dialog.showModal();
  ui.docClose.focus();
  let doc;
  try {
    doc = await withToken(() => getJSON(documentPath(hit.doc_id)));
  } catch (error) {
    const message = error instanceof ApiError ? error.message : String(error);
    ui.docText.replaceChildren(element("p", "problem", message));
    return;
  }
  if (!ui.dialog.open) return; // closed while it loaded
  const fields = [
    ["id", doc.doc_id],
    ["passages", String(doc.chunks.length)],
    ["characters", doc.n_chars.toLocaleString()],
    ["updated", doc.updated_at],
    ...Object.entries(doc.metadata || {}).map(([key, value]) => [key, typeof value === "string" ? value : JSON.stringify(value)]),
  ];
  ui.docFields.replaceChildren(
    ...fields.flatMap(([name, value]) => [element("dt", "", name), element("dd", "", value)]),
  );
  const { fragment, current } = documentText(doc, hit, termPattern(queryTerms(params.q, params.mode)));
  ui.docText.lang = doc.lang && doc.lang !== "unknown" ? doc.lang : "";
  ui.docText.replaceChildren(fragment);
  if (current) current.scrollIntoView({ block: "center" });
}

function resultButtons() {
  return [...ui.results.querySelectorAll("button.open")];
}

function wireKeyboard() {
  document.addEventListener("keydown", (event) => {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || ui.dialog.open || ui.search.hidden) return;
    const target = event.target;
    if (target instanceof HTMLInputElement || target instanceof HTMLSelectElement || target instanceof HTMLTextAreaElement) return;
    event.preventDefault();
    ui.q.focus();
    ui.q.select();
  });
  ui.q.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && resultButtons().length) {
      event.preventDefault();
      resultButtons()[0].focus();
    }
  });
  ui.results.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const buttons = resultButtons();
    const at = buttons.indexOf(document.activeElement);
    if (at < 0) return;
    event.preventDefault();
    const next = at + (event.key === "ArrowDown" ? 1 : -1);
    if (next < 0) ui.q.focus();
    else if (next < buttons.length) {
      buttons[next].focus();
      buttons[next].closest("li").scrollIntoView({ block: "nearest" });
    }
  });
}

function wireDialog() {
  ui.docClose.addEventListener("click", () => ui.dialog.close());
  ui.dialog.addEventListener("click", (event) => {
    if (event.target === ui.dialog) ui.dialog.close(); // a click on the backdrop
  });
  ui.dialog.addEventListener("close", () => {
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  });
}

async function start() {
  wireKeyboard();
  wireDialog();
  ui.search.addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  for (const select of [ui.lang, ui.mode, ui.k]) {
    select.addEventListener("change", () => ui.q.value.trim() && runSearch());
  }
  ui.forget.addEventListener("click", async () => {
    await unlock("The token is forgotten. Enter it to search again.");
    await startIndex();
  });
  window.addEventListener("popstate", () => {
    fillForm(new URLSearchParams(window.location.search));
    if (ui.q.value.trim()) runSearch({ remember: false });
  });
  try {
    needsToken = (await serverAuth()) === "bearer";
  } catch {
    showProblem("The server could not be reached. Is indexer serve still running?");
    return;
  }
  if (needsToken && !tokenStore.get()) await unlock();
  await startIndex();
}

/** With the token (if any): the index's figures and languages, then the search from the URL. */
async function startIndex() {
  try {
    await loadStats();
  } catch (error) {
    showProblem(...problemOf(error));
  }
  ui.search.hidden = false;
  ui.forget.hidden = !needsToken;
  fillForm(new URLSearchParams(window.location.search));
  ui.q.focus();
  if (ui.q.value.trim()) runSearch({ remember: false });
}

start();
