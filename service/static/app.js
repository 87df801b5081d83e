// ShopLens workbench: one page over the HTTP API (POST /search). No build step, no dependencies.
"use strict";

const $ = (selector) => document.querySelector(selector);
const state = { image: null, filters: [], compare: false, responses: [], selected: -1 };
const apiKey = new URLSearchParams(location.search).get("key") || localStorage.getItem("shoplens-key");
if (apiKey) localStorage.setItem("shoplens-key", apiKey);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function status(text, isError = false) {
  const line = $("#status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

const fmt = (value, digits = 3) => (value === null || value === undefined ? "-" : Number(value).toFixed(digits));

// -- query building -------------------------------------------------------------------

function readConfig(fieldset) {
  const form = $(fieldset);
  const weights = form.querySelector("[name=weights]").value.split(",").map(Number);
  return {
    mode: form.querySelector("[name=mode]").value,
    fusion: form.querySelector("[name=fusion]").value,
    weights: weights.length === 2 && weights.every((w) => Number.isFinite(w)) ? weights : [1, 1],
    rerank: form.querySelector("[name=rerank]").checked,
  };
}

function describeConfig(config) {
  return `${config.mode}${config.mode === "hybrid" ? ` ${config.fusion} ${config.weights.join(",")}` : ""}` +
    (config.rerank ? " + rerank" : "");
}

async function runSearch(config) {
  const body = { q: $("#q").value.trim() || null, k: Math.min(100, Math.max(1, Number($("#k").value) || 12)),
                 filters: state.filters, explain: true, ...config };
  if (state.image) body.image = state.image;
  const headers = { "Content-Type": "application/json" };
  if (apiKey) headers["X-API-Key"] = apiKey;
  const reply = await fetch("/search", { method: "POST", headers, body: JSON.stringify(body) });
  const data = await reply.json();
  if (!reply.ok) throw new Error(data.error || `HTTP ${reply.status}`);
  return data;
}

async function search() {
  if (!$("#q").value.trim() && !state.image) { status("type a query or drop a photo"); return; }
  const configs = [readConfig("#config-a")];
  if (state.compare) configs.push(readConfig("#config-b"));
  status("searching...");
  try {
    state.responses = await Promise.all(configs.map(runSearch));
  } catch (problem) {
    status(problem.message, true);
    return;
  }
  state.configs = configs;
  state.selected = -1;
  render();
  const first = state.responses[0];
  const versions = [...new Set(state.responses.map((r) => r.version))].join(", ");
  status(`${first.results.length} results of ${first.total_candidates} candidates, ` +
         state.responses.map((r) => `${Math.round(r.took_ms)} ms`).join(" | ") + `, index version ${versions}`);
}

// -- results ------------------------------------------------------------------------------

function render() {
  const main = $("#results");
  main.replaceChildren();
  main.classList.toggle("compare", state.responses.length > 1);
  if (state.responses.length > 1) {
    const [a, b] = state.responses;
    const rankIn = (response) => new Map(response.results.map((r) => [r.id, r.rank]));
    main.append(column("A: " + describeConfig(state.configs[0]), a, rankIn(b), 0),
                column("B: " + describeConfig(state.configs[1]), b, rankIn(a), 1));
  } else {
    main.append(column(null, state.responses[0], null, 0));
  }
  if (!main.querySelector(".card")) main.append(el("p", { class: "empty" }, "no results" + (state.filters.length ? " (try fewer filters)" : "")));
}

function column(title, response, otherRanks, side) {
  const grid = el("div", { class: "grid", role: "list" });
  for (const result of response.results) grid.append(card(result, otherRanks, side));
  return el("section", { class: "column", "data-side": side }, title ? el("h2", {}, title) : null, grid);
}

function movement(result, otherRanks) {
  if (!otherRanks) return null;
  const before = otherRanks.get(result.id);
  if (before === undefined) return el("span", { class: "move new", title: "not in the other configuration's results" }, "new");
  if (before === result.rank) return null;
  const up = before > result.rank;
  return el("span", { class: `move ${up ? "up" : "down"}`, title: `rank ${before} in the other configuration` },
            `${up ? "\u25b2" : "\u25bc"}${Math.abs(before - result.rank)}`);
}

function card(result, otherRanks, side) {
  const moved = movement(result, otherRanks);
  const s = result.signals;
  const node = el("button", { class: "card" + (moved ? " moved" : ""), type: "button", role: "listitem",
                              "data-id": result.id, "data-side": side, onclick: () => explain(result, side) },
    el("span", { class: "rank" }, result.rank), moved,
    el("img", { src: `/products/${encodeURIComponent(result.id)}/image?size=256`, alt: result.title, loading: "lazy" }),
    el("span", { class: "title" }, result.title),
    el("span", { class: "brand" }, result.brand || "\u00a0"),
    el("span", { class: "price" }, result.price === null ? "no price" : `\u20b9${Number(result.price).toLocaleString()}`),
    el("span", { class: "scores" }, `score ${fmt(result.score)}  fused ${fmt(s.fused, 4)}`,
       el("br"), `bm25 ${fmt(s.bm25, 2)}  dense ${fmt(s.dense)}` + (s.rerank !== null && s.rerank !== undefined ? `  rr ${fmt(s.rerank)}` : "")));
  node.addEventListener("focus", () => { state.selected = cards().indexOf(node); markSelected(); });
  return node;
}

const cards = () => [...document.querySelectorAll(".card")];

function markSelected() {
  cards().forEach((node, i) => node.classList.toggle("selected", i === state.selected));
}

// -- explain ----------------------------------------------------------------------------

function explain(result, side) {
  const body = $("#explain-body");
  const x = result.explain || {};
  const s = result.signals;
  const signals = el("table", { class: "signals" },
    el("tr", {}, el("th", {}, "signal"), el("th", {}, "score"), el("th", {}, "rank")),
    el("tr", {}, el("td", {}, "BM25"), el("td", {}, fmt(s.bm25)), el("td", {}, x.bm25_rank ?? "-")),
    el("tr", {}, el("td", {}, "dense"), el("td", {}, fmt(s.dense)), el("td", {}, x.dense_rank ?? "-")),
    el("tr", {}, el("td", {}, "fused"), el("td", {}, fmt(s.fused, 5)), el("td", {}, x.fused_rank ?? "-")),
    el("tr", {}, el("td", {}, "reranker"), el("td", {}, fmt(s.rerank)), el("td", {}, s.rerank === null ? "-" : result.rank)));
  const parts = [el("h2", {}, `#${result.rank} ${result.title}`),
                 el("p", {}, `${result.brand || ""} \u00b7 id ${result.id}` + (state.responses.length > 1 ? ` \u00b7 configuration ${side ? "B" : "A"}` : "")),
                 el("h3", {}, "retrieval signals"), signals];
  const contributions = x.rerank_contributions;
  if (contributions) {
    parts.push(el("h3", {}, "reranker: per-feature contributions"), contributionBars(contributions));
  } else {
    parts.push(el("p", { class: "empty" }, "no reranker contributions: reranking was off, or the index has no reranker"));
  }
  body.replaceChildren(...parts);
  const panel = $("#explain");
  panel.hidden = false;
  panel.focus();
}

function contributionBars(contributions) {
  const rows = Object.entries(contributions.features)
    .map(([name, item]) => ({ name, ...item }))
    .filter((item) => item.contribution !== 0)
    .sort((a, b) => Math.abs(b.contribution) - Math.abs(a.contribution))
    .slice(0, 16);
  const largest = Math.max(1e-9, ...rows.map((r) => Math.abs(r.contribution)));
  const chart = el("div", { class: "bars", role: "img", "aria-label": "per-feature contributions to the reranker score" });
  for (const row of rows) {
    const width = `${(Math.abs(row.contribution) / largest) * 50}%`;
    const bar = el("div", { class: `bar ${row.contribution >= 0 ? "pos" : "neg"}`, style: `width:${width}` });
    chart.append(el("span", { class: "name", title: `value ${row.value === null ? "missing" : fmt(row.value)}` }, row.name),
                 el("div", { class: "bar-track" }, el("span", { class: "axis" }), bar),
                 el("span", { class: "num" }, (row.contribution >= 0 ? "+" : "") + fmt(row.contribution)));
  }
  return el("div", {}, chart, el("p", { class: "empty" }, `bias ${fmt(contributions.bias)}; ${rows.length} largest of ${Object.keys(contributions.features).length} features (hover a name for its value)`));
}

function closeOverlays() {
  $("#explain").hidden = true;
  $("#help").hidden = true;
  const current = cards()[state.selected];
  if (current) current.focus();
}

// -- filters and photo ----------------------------------------------------------------

function renderChips() {
  $("#chips").replaceChildren(...state.filters.map((text, i) => el("span", { class: "chip", "data-filter": text }, text,
    el("button", { type: "button", "aria-label": `remove filter ${text}`, onclick: () => { state.filters.splice(i, 1); renderChips(); search(); } }, "\u00d7"))));
}

function setPhoto(file) {
  if (!file || !file.type.startsWith("image/")) { status("that is not an image file", true); return; }
  const reader = new FileReader();
  reader.onload = () => {
    const dataUrl = String(reader.result);
    state.image = dataUrl.slice(dataUrl.indexOf(",") + 1).replace(/\+/g, "-").replace(/\//g, "_");
    $("#photo-preview").src = dataUrl;
    $("#photo-chip").hidden = false;
    search();
  };
  reader.readAsDataURL(file);
}

// -- wiring --------------------------------------------------------------------------------

$("#search-form").addEventListener("submit", (event) => { event.preventDefault(); search(); });
$("#filter-input").addEventListener("keydown", (event) => {
  if (event.key !== "Enter") return;
  event.preventDefault();
  const text = event.target.value.trim();
  if (text && !state.filters.includes(text)) { state.filters.push(text); renderChips(); }
  event.target.value = "";
  search();
});
$("#photo").addEventListener("change", (event) => setPhoto(event.target.files[0]));
$("#photo-clear").addEventListener("click", () => { state.image = null; $("#photo-chip").hidden = true; $("#photo").value = ""; });
const drop = $("#drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => { event.preventDefault(); drop.classList.remove("over"); setPhoto(event.dataTransfer.files[0]); });
$("#compare").addEventListener("click", toggleCompare);
$("#explain-close").addEventListener("click", closeOverlays);
$("#help-button").addEventListener("click", () => { $("#help").hidden = !$("#help").hidden; });

function toggleCompare() {
  state.compare = !state.compare;
  $("#compare").setAttribute("aria-pressed", String(state.compare));
  $("#config-b").hidden = !state.compare;
  if (state.responses.length) search();
}

function moveSelection(key) {
  const all = cards();
  if (!all.length) return;
  const grid = all[Math.max(0, state.selected)].parentElement;
  const perRow = Math.max(1, Math.round(grid.clientWidth / all[0].getBoundingClientRect().width));
  const step = { ArrowRight: 1, l: 1, ArrowLeft: -1, h: -1, ArrowDown: perRow, j: perRow, ArrowUp: -perRow, k: -perRow }[key];
  const next = state.selected < 0 ? 0 : Math.min(all.length - 1, Math.max(0, state.selected + step));
  all[next].focus();
}

document.addEventListener("keydown", (event) => {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "Escape") { closeOverlays(); return; }
  if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
  if (event.key === "/") { event.preventDefault(); $("#q").focus(); }
  else if (event.key === "f") { event.preventDefault(); $("#filter-input").focus(); }
  else if (event.key === "c") toggleCompare();
  else if (event.key === "?") $("#help").hidden = !$("#help").hidden;
  else if (event.key === "e" && state.selected >= 0) cards()[state.selected].click();
  else if (["ArrowRight", "ArrowLeft", "ArrowDown", "ArrowUp", "h", "j", "k", "l"].includes(event.key)) {
    event.preventDefault();
    moveSelection(event.key);
  }
});
