// kb serve's web page: ask (a conversation, the answer streamed, its [n] citations linked to the cited
// page of each source) or search only; upload documents, follow the job, list and remove documents.
// Plain DOM, no build step. Text from the server is only ever set as textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("kb_token") || "";

const MAX_RECENT = 20; // questions kept in this browser
const RECENT_KEY = "kb_recent";
const POLL_MS = 400;

function authHeaders(extra = {}) {
  return token ? { ...extra, Authorization: "Bearer " + token } : extra;
}

function setToken(value) {
  token = value;
  sessionStorage.setItem("kb_token", value);
}

// A citation link is a plain navigation and cannot carry a header: the server also accepts the token
// as this cookie (its name from GET /status), for GET /documents/{id} only.
function setTokenCookie(name) {
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = name + "=" + encodeURIComponent(token) + "; path=/documents; SameSite=Strict" + secure;
}

// Every API call: the token when there is one; a 401 shows the token form.
async function api(method, url, body) {
  const init = { method, headers: authHeaders() };
  if (body instanceof FormData) init.body = body;
  else if (body !== undefined) {
    init.headers = authHeaders({ "Content-Type": "application/json" });
    init.body = JSON.stringify(body);
  }
  const r = await fetch(url, init);
  if (r.status === 401) $("token-form").hidden = false;
  return r;
}

// Sources are absolute paths; the page shows them from the folder that holds every document.
let folder = null;
// What GET /status says of the server (its "server" block): the upload limit and the file types kb
// reads, the earlier turns a follow-up sends, and how a passage's place is named (kb.types.UNITS).
let maxUploadMb = null;
let keptTurns = null;
let units = {};
let failures = [];
let docsBySource = new Map();

function shown(source) {
  return folder && source.startsWith(folder + "/") ? source.slice(folder.length + 1) : source;
}

// Where in its file a passage is, as a reader names it: p.12, slide 3, rows 2-40.
function locator(unit, first, last) {
  const [one, many] = units[unit] || units.page || ["", ""];
  return last != null && last !== first ? many + first + "-" + last : one + first;
}

function cite(x) {
  let text = shown(x.source);
  if (x.page != null) text += " " + locator(x.unit, x.page, x.page_end);
  if (x.section) text += " § " + x.section;
  return text;
}

function link(url, text, label) {
  if (!url) return document.createTextNode(text);
  const a = document.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener";
  a.textContent = text;
  if (label) a.setAttribute("aria-label", label);
  return a;
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text != null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

const plural = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.status + " " + response.statusText;
  }
}

// The answering model as GET /status says it is: ready, loading, not running now (it starts again on
// the next question), failed to load (with why; answers quote the documents), or none by choice.
function modelLine(server) {
  const m = server.model || { name: server.llm, state: server.llm ? "ready" : "none" };
  const why = m.reason ? ": " + m.reason : "";
  switch (m.state) {
    case "ready":
      return "answers by " + m.name;
    case "loading":
      return `loading ${m.name}…`;
    case "not loaded":
      return `answers by ${m.name} (stopped${why}; it starts again on the next question)`;
    case "failed":
      return `the model failed to load${why}; answers quote the documents`;
    default:
      return "answers quote the documents (no LLM)";
  }
}

async function loadStatus() {
  const status = $("kb-status");
  try {
    const r = await api("GET", "/status");
    if (r.status === 401) {
      status.textContent = "This server needs an API token.";
      return false;
    }
    if (!r.ok) {
      status.textContent = "Server error: " + (await detail(r));
      return false;
    }
    const s = await r.json();
    folder = s.folder && s.folder !== "/" ? s.folder : null;
    failures = s.failed || [];
    const server = s.server || {};
    maxUploadMb = server.max_upload_mb ?? null;
    keptTurns = server.kept_turns ?? null;
    units = server.units || {};
    if (token && server.token_cookie) setTokenCookie(server.token_cookie);
    if (maxUploadMb != null && server.file_types) {
      $("upload-help").textContent =
        `Drop files here, or choose them: ${server.file_types.join(", ")}; up to ${maxUploadMb} MB in all.`;
    }
    $("token-form").hidden = true;
    status.textContent = `${plural(s.documents, "document")} · ${plural(s.chunks, "passage")} · ${modelLine(server)}`;
    return true;
  } catch {
    status.textContent = "Cannot reach the server.";
    return false;
  }
}

// --- the answer ---------------------------------------------------------------------------------
function appendCited(parent, text, links, byN) {
  const marker = /\[(\d+)\]/g;
  let last = 0;
  let m;
  while ((m = marker.exec(text)) !== null) {
    parent.append(text.slice(last, m.index));
    const c = byN[m[1]];
    const label = c ? `source ${m[1]}: ${cite(c)}` : `source ${m[1]}`;
    const node = link(links.citations[m[1]], m[0], label);
    if (node.nodeType === Node.ELEMENT_NODE) node.className = "cite";
    parent.append(node);
    last = marker.lastIndex;
  }
  parent.append(text.slice(last));
}

// `text` with the query's terms in <mark>: `spans` are [start, end) offsets in code points (as the
// server counts them), hence Array.from rather than string indices (UTF-16 units).
function marked(text, spans) {
  const out = document.createDocumentFragment();
  const chars = Array.from(text);
  let at = 0;
  for (const [start, end] of spans || []) {
    if (start < at || end <= start) continue;
    out.append(chars.slice(at, start).join(""));
    const mark = document.createElement("mark");
    mark.className = "match";
    mark.textContent = chars.slice(start, end).join("");
    out.append(mark);
    at = end;
  }
  out.append(chars.slice(at).join(""));
  return out;
}

function renderAnswer(result, links) {
  const byN = Object.fromEntries(result.citations.map((c) => [String(c.n), c]));
  const text = result.answer;
  const ranges = [];
  for (const u of result.unsupported || []) {
    const at = text.indexOf(u.sentence);
    if (at >= 0) ranges.push([at, at + u.sentence.length, u]);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  const p = document.createElement("p");
  let pos = 0;
  for (const [start, end, u] of ranges) {
    if (start < pos) continue;
    appendCited(p, text.slice(pos, start), links, byN);
    const mark = document.createElement("mark");
    mark.className = "unsupported";
    appendCited(mark, text.slice(start, end), links, byN);
    p.append(mark, el("span", "unsupported: " + (u.reasons || []).join("; "), "flag"));
    pos = end;
  }
  appendCited(p, text.slice(pos), links, byN);
  $("answer").replaceChildren(p);
  if (result.model_answer) $("answer").append(rejectedAnswer(result.model_answer));

  const notes = [];
  if (result.removed_citations && result.removed_citations.length) {
    notes.push("Removed citations of sources that were not given: " + result.removed_citations.map((n) => `[${n}]`).join(", "));
  }
  if (result.note) notes.push(result.note);
  if (result.llm) notes.push("Answered by " + result.llm + ".");
  $("answer-note").textContent = notes.join(" ");

  const sources = $("sources");
  sources.replaceChildren();
  for (const c of result.citations) {
    const li = document.createElement("li");
    li.value = c.n;
    li.append(link(links.citations[String(c.n)], `[${c.n}] ${cite(c)}`));
    if (c.supported === false) li.append(el("span", "unsupported", "flag"));
    li.append(el("blockquote", c.quote));
    sources.append(li);
  }
  $("sources-section").hidden = result.citations.length === 0;
  renderPassages(result.hits, (h) => links.hits[String(h.rank)], "Retrieved passages");
}

// A model's answer that is not the answer (no sentence of it passes the citation check, or it cites
// nothing): folded away under the quoted passages, with what failed.
function rejectedAnswer(model) {
  const details = el("details", null, "model-answer");
  const why = model.reason === "uncited" ? "it cites none of the sources" : "it is not supported by the sources";
  details.append(el("summary", "The model's answer, not shown: " + why));
  details.append(el("p", model.text, "passage"));
  for (const u of model.unsupported || []) {
    details.append(el("p", "“" + u.sentence + "”: " + (u.reasons || []).join("; "), "hint"));
  }
  return details;
}

// The passages, each cited (linked to its file, at its page) with its snippet, the query's terms marked.
function renderPassages(hits, urlOf, heading) {
  $("passages-heading").textContent = heading;
  const passages = $("passages");
  passages.replaceChildren();
  for (const h of hits) {
    const li = document.createElement("li");
    li.append(link(urlOf(h), cite(h)));
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    if (h.snippet != null) {
      summary.append(marked(h.snippet, h.snippet_highlights));
    } else {
      const flat = h.text.replace(/\s+/g, " ").trim();
      summary.textContent = flat.length > 160 ? flat.slice(0, 159) + "…" : flat;
    }
    const full = el("p", null, "passage");
    full.append(marked(h.text, h.highlights));
    details.append(summary, full);
    li.append(details);
    passages.append(li);
  }
  $("passages-section").hidden = false;
}

// A search hit's file on this server (from the document list), at the hit's page for a PDF.
function hitUrl(h) {
  const doc = docsBySource.get(h.source);
  if (!doc) return null;
  return doc.url + (doc.file_type === "pdf" && h.page ? "#page=" + h.page : "");
}

function showError(message) {
  $("answer-section").hidden = false;
  $("answer").replaceChildren(el("p", message, "error"));
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}

// --- the conversation: earlier turns go with a follow-up question, oldest first ------------------
let conversation = [];

function renderConversation() {
  const list = $("conversation");
  list.replaceChildren();
  for (const turn of conversation) {
    const li = document.createElement("li");
    li.append(el("p", turn.question, "turn-question"), el("p", turn.answer, "turn-answer"));
    list.append(li);
  }
  $("conversation-section").hidden = conversation.length === 0;
  $("new-conversation").hidden = conversation.length === 0;
}

function newConversation() {
  conversation = [];
  renderConversation();
  $("answer").replaceChildren(el("p", "Ask a question to see an answer here.", "hint"));
  $("answer-note").textContent = "";
  $("sources-section").hidden = true;
  $("passages-section").hidden = true;
  $("question").focus();
}

function startRun() {
  $("answer-note").textContent = "";
  $("sources-section").hidden = true;
  $("passages-section").hidden = true;
  $("passages-note").textContent = "";
  $("ask-button").disabled = true;
}

async function ask(question, k) {
  const answer = $("answer");
  const live = document.createElement("p");
  renderConversation(); // the turns before this one
  $("answer-section").hidden = false;
  answer.replaceChildren(live);
  answer.setAttribute("aria-busy", "true");
  startRun();
  const body = { question, k };
  if (conversation.length) body.history = keptTurns ? conversation.slice(-keptTurns) : conversation;
  try {
    const r = await fetch("/ask/stream", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify(body),
    });
    if (!r.ok) {
      if (r.status === 401) $("token-form").hidden = false;
      showError(await detail(r));
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let text = "";
    let links = { citations: {}, hits: {} };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const ev = parseEvent(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
        if (!ev) continue;
        if (ev.event === "token") {
          text += ev.data.text;
          live.textContent = text;
        } else if (ev.event === "links") {
          links = ev.data;
        } else if (ev.event === "answer") {
          renderAnswer(ev.data, links);
          conversation = [...conversation, { question, answer: ev.data.answer }];
          if (keptTurns) conversation = conversation.slice(-keptTurns);
          $("new-conversation").hidden = false;
        } else if (ev.event === "error") {
          showError(ev.data.detail);
        }
      }
    }
  } catch (e) {
    showError("The answer stopped: " + e.message);
  } finally {
    answer.setAttribute("aria-busy", "false");
    $("ask-button").disabled = false;
    loadStatus(); // the model's state may have changed with this answer (loaded, crashed, failed)
  }
}

// Search only: the best passages with the match marked; no LLM, and the conversation is left as it is.
async function searchOnly(query, k) {
  $("answer-section").hidden = true;
  startRun();
  $("passages-section").hidden = false;
  $("passages").replaceChildren();
  $("passages-heading").textContent = "Passages";
  $("passages-note").textContent = "Searching…";
  try {
    const r = await api("POST", "/search", { query, k });
    if (!r.ok) {
      $("passages-note").textContent = "";
      showError(await detail(r));
      return;
    }
    const result = await r.json();
    renderPassages(result.hits, hitUrl, "Passages");
    $("passages-note").textContent = result.hits.length
      ? `${plural(result.hits.length, "passage")} for “${query}” (search only: no answer written).`
      : `Nothing found for “${query}”.`;
  } catch (e) {
    showError("The search failed: " + e.message);
  } finally {
    $("ask-button").disabled = false;
  }
}

function currentMode() {
  return $("mode-search").checked ? "search" : "ask";
}

function setMode(mode) {
  $(mode === "search" ? "mode-search" : "mode-ask").checked = true;
  $("ask-button").textContent = mode === "search" ? "Search" : "Ask";
}

function currentK() {
  return Math.min(20, Math.max(1, parseInt($("k").value, 10) || 5));
}

// Ask or search, as the form says; the address bar then holds a link that asks the same again.
function run(question, mode, k) {
  const params = new URLSearchParams({ q: question });
  if (mode === "search") params.set("mode", "search");
  if (k !== 5) params.set("k", String(k));
  history.replaceState(null, "", "/?" + params.toString());
  remember(question, mode);
  return mode === "search" ? searchOnly(question, k) : ask(question, k);
}

// --- recent questions, kept in this browser ------------------------------------------------------
function recent() {
  try {
    const items = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
    return Array.isArray(items) ? items.filter((x) => x && typeof x.q === "string") : [];
  } catch {
    return [];
  }
}

function saveRecent(items) {
  try {
    if (items.length) localStorage.setItem(RECENT_KEY, JSON.stringify(items));
    else localStorage.removeItem(RECENT_KEY);
  } catch {
    // storage full or disabled: the list is only a convenience
  }
  renderRecent(items);
}

function remember(question, mode) {
  const items = recent().filter((x) => !(x.q === question && x.mode === mode));
  saveRecent([{ q: question, mode }, ...items].slice(0, MAX_RECENT));
}

function renderRecent(items) {
  const list = $("recent");
  list.replaceChildren();
  for (const item of items) {
    const li = document.createElement("li");
    const button = el("button", item.q, "link-button");
    button.type = "button";
    if (item.mode === "search") {
      button.append(el("span", " (search only)", "hint"));
    }
    button.addEventListener("click", () => {
      $("question").value = item.q;
      setMode(item.mode);
      run(item.q, item.mode, currentK());
    });
    li.append(button);
    list.append(li);
  }
  $("recent-section").hidden = items.length === 0;
}

// --- jobs: an upload's ingest, a removal ---------------------------------------------------------
function describeJob(job) {
  const p = job.progress || {};
  if (job.state === "queued") return "Waiting for the job ahead of it…";
  if (job.kind === "remove") return "Removing…";
  if (p.step === "scanning") return "Looking at the files…";
  if (p.step === "model") return "Loading the embedding model…";
  let text = `Ingesting: ${p.done} of ${p.total != null ? plural(p.total, "file") : "? files"} done`;
  text += ` · ${plural(p.pages, "page")} · ${plural(p.chunks, "passage")}`;
  if (p.current) text += ` · now ${shown(p.current)}`;
  return text;
}

function showProgress(job) {
  const bar = $("job-progress");
  const p = job.progress || {};
  bar.hidden = false;
  if (p.total) {
    bar.max = p.total;
    bar.value = p.done;
  } else {
    bar.removeAttribute("value"); // indeterminate
  }
  const text = describeJob(job);
  if ($("job-status").textContent !== text) $("job-status").textContent = text;
}

// Poll a job until it ends; the finished job, or null when the server stopped answering.
async function follow(job) {
  let misses = 0;
  while (job.state === "queued" || job.state === "running") {
    showProgress(job);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    try {
      const r = await api("GET", "/jobs/" + job.id);
      if (!r.ok) throw new Error(await detail(r));
      job = await r.json();
      misses = 0;
    } catch (e) {
      if (++misses >= 10) {
        $("job-status").textContent = "Lost track of the job: " + e.message;
        $("job-progress").hidden = true;
        return null;
      }
    }
  }
  $("job-progress").hidden = true;
  return job;
}

function reportLine(label, source, reason) {
  const li = el("li", `${label}: ${shown(source)}` + (reason ? ` — ${reason}` : ""));
  if (label === "Failed") li.className = "error";
  return li;
}

function showReport(job) {
  const list = $("job-report");
  list.replaceChildren();
  if (job.state !== "done") {
    $("job-status").textContent = (job.kind === "remove" ? "Removal " : "Ingest ") + job.state + ": " + (job.error || "");
    return;
  }
  const r = job.report || {};
  if (job.kind === "remove") {
    $("job-status").textContent = r.removed && r.removed.length
      ? "Removed " + r.removed.map(shown).join(", ") + "."
      : "Nothing was removed.";
    return;
  }
  for (const s of r.added || []) list.append(reportLine("Added", s));
  for (const s of r.updated || []) list.append(reportLine("Updated", s));
  for (const s of r.unchanged || []) list.append(reportLine("Unchanged", s));
  for (const f of r.skipped || []) list.append(reportLine("Skipped", f.source, f.reason));
  for (const f of r.failed || []) list.append(reportLine("Failed", f.source, f.reason));
  const failed = (r.failed || []).length;
  $("job-status").textContent = `Ingest done: ${plural((r.added || []).length + (r.updated || []).length, "file")} added or updated`
    + `, ${plural(r.pages || 0, "page")}, ${plural(r.chunks || 0, "passage")}`
    + (failed ? `; ${failed} failed (below).` : ".");
}

async function upload(fileList) {
  const files = Array.from(fileList || []);
  $("upload").value = ""; // the next choice starts afresh, and the same file can be chosen again
  if (!files.length) return;
  $("job-report").replaceChildren();
  if (maxUploadMb != null) {
    const cap = maxUploadMb * 1024 * 1024;
    const over = files.filter((f) => f.size > cap);
    const total = files.reduce((sum, f) => sum + f.size, 0);
    if (over.length || total > cap) {
      const what = over.length
        ? over.map((f) => `${f.name} (${size(f.size)})`).join(", ")
        : `these files together (${size(total)})`;
      $("job-status").textContent = `Not sent: ${what} over this server's upload limit of ${maxUploadMb} MB.`;
      return;
    }
  }
  const form = new FormData();
  for (const f of files) form.append("files", f, f.name);
  $("job-status").textContent = `Uploading ${plural(files.length, "file")}…`;
  $("upload").disabled = true;
  try {
    const r = await api("POST", "/ingest", form);
    if (!r.ok) {
      $("job-status").textContent = "Upload refused: " + (await detail(r));
      return;
    }
    const job = await follow(await r.json());
    await refresh(); // first: the report shows sources from the folder that now holds every document
    if (job) showReport(job);
  } catch (e) {
    $("job-status").textContent = "The upload failed: " + e.message;
  } finally {
    $("upload").disabled = false;
  }
}

async function remove(doc) {
  if (!confirm(`Remove ${shown(doc.source)} from the knowledge base?`)) return;
  $("job-report").replaceChildren();
  try {
    const r = await api("DELETE", doc.url);
    if (!r.ok) {
      $("job-status").textContent = "Not removed: " + (await detail(r));
      return;
    }
    const job = await follow(await r.json());
    if (job) showReport(job); // before the refresh: shown from the folder the document was in
  } catch (e) {
    $("job-status").textContent = "The removal failed: " + e.message;
  }
  await refresh();
  $("documents-heading").focus();
}

// --- the document list --------------------------------------------------------------------------
function size(bytes) {
  if (bytes == null) return "";
  if (bytes < 1024) return bytes + " B";
  if (bytes < 1024 * 1024) return (bytes / 1024).toFixed(0) + " KB";
  return (bytes / 1024 / 1024).toFixed(1) + " MB";
}

function cell(row, text, className) {
  const td = el("td", text, className);
  row.append(td);
  return td;
}

async function loadDocuments() {
  const r = await api("GET", "/documents");
  if (!r.ok) return;
  const docs = await r.json();
  docsBySource = new Map(docs.map((d) => [d.source, d]));
  const body = $("documents");
  body.replaceChildren();
  for (const d of docs) {
    const row = document.createElement("tr");
    const name = document.createElement("th");
    name.scope = "row";
    name.append(link(d.url, shown(d.source)));
    if (d.title && d.title !== shown(d.source)) name.append(el("span", d.title, "hint doc-title"));
    row.append(name);
    cell(row, d.file_type);
    cell(row, d.pages == null ? "—" : d.unit && d.unit !== "page" ? plural(d.pages, d.unit) : String(d.pages), "num");
    cell(row, String(d.chunks), "num");
    cell(row, size(d.bytes), "num");
    const when = document.createElement("time");
    when.dateTime = d.ingested_at;
    when.textContent = new Date(d.ingested_at).toLocaleString();
    cell(row, null).append(when);
    const button = el("button", "Remove", "secondary");
    button.type = "button";
    button.setAttribute("aria-label", "Remove " + shown(d.source));
    button.addEventListener("click", () => remove(d));
    cell(row, null).append(button);
    body.append(row);
  }
  $("documents-table").hidden = docs.length === 0;
  $("documents-empty").hidden = docs.length !== 0;

  const list = $("failures");
  list.replaceChildren();
  for (const f of failures) list.append(el("li", `${shown(f.source)} — ${f.reason}`));
  $("failures-section").hidden = failures.length === 0;
}

async function refresh() {
  const ok = await loadStatus();
  if (ok) await loadDocuments();
  return ok;
}

// --- wiring -------------------------------------------------------------------------------------
function setUpDropZone() {
  const zone = $("drop-zone");
  const carriesFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types || []).includes("Files");
  // A file dropped beside the zone must not replace the page with the file.
  for (const type of ["dragover", "drop"]) {
    document.addEventListener(type, (e) => {
      if (carriesFiles(e) && !zone.contains(e.target)) e.preventDefault();
    });
  }
  zone.addEventListener("dragenter", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragover", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = "copy";
  });
  zone.addEventListener("dragleave", (e) => {
    if (!zone.contains(e.relatedTarget)) zone.classList.remove("dragging");
  });
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    upload(e.dataTransfer.files);
  });
  $("upload").addEventListener("change", (e) => upload(e.target.files));
}

document.addEventListener("DOMContentLoaded", () => {
  // A shared link (/?q=...&mode=search&k=N) asks its question once the server answers.
  const params = new URLSearchParams(location.search);
  let pending = params.get("q") ? params.get("q").trim() : null;
  setMode(params.get("mode") === "search" ? "search" : "ask");
  if (params.get("k")) $("k").value = String(Math.min(20, Math.max(1, parseInt(params.get("k"), 10) || 5)));
  if (pending) $("question").value = pending;

  const start = async () => {
    if (!(await refresh())) return;
    if (pending) {
      const q = pending;
      pending = null;
      run(q, currentMode(), currentK());
    }
  };
  start();
  renderRecent(recent());
  setUpDropZone();

  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    start();
  });
  const question = $("question");
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    radio.addEventListener("change", () => setMode(currentMode()));
  }
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = question.value.trim();
    if (q && !$("ask-button").disabled) run(q, currentMode(), currentK());
  });
  $("new-conversation").addEventListener("click", newConversation);
  $("clear-recent").addEventListener("click", () => {
    saveRecent([]);
    $("question").focus();
  });
});
