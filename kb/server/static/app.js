// kb serve's web page: ask, stream the answer, link its [n] citations to the cited page of each source.
// Plain DOM, no build step. Text from the server is only ever set as textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("kb_token") || "";

function authHeaders(extra = {}) {
  return token ? { ...extra, Authorization: "Bearer " + token } : extra;
}

function setToken(value) {
  token = value;
  sessionStorage.setItem("kb_token", value);
  // A citation link is a plain navigation and cannot carry a header: the server also accepts this
  // cookie, for GET /documents/{id} only.
  const secure = location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "kb_token=" + encodeURIComponent(value) + "; path=/documents; SameSite=Strict" + secure;
}

// Sources are absolute paths; the page shows them from the folder that holds every document.
let folder = null;

function shown(source) {
  return folder && source.startsWith(folder + "/") ? source.slice(folder.length + 1) : source;
}

function cite(x) {
  let text = shown(x.source);
  if (x.page != null) text += " p." + x.page + (x.page_end != null && x.page_end !== x.page ? "-" + x.page_end : "");
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

async function detail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return response.status + " " + response.statusText;
  }
}

async function loadStatus() {
  const status = $("kb-status");
  try {
    const r = await fetch("/status", { headers: authHeaders() });
    if (r.status === 401) {
      $("token-form").hidden = false;
      status.textContent = "This server needs an API token.";
      return;
    }
    if (!r.ok) {
      status.textContent = "Server error: " + (await detail(r));
      return;
    }
    const s = await r.json();
    folder = s.folder && s.folder !== "/" ? s.folder : null;
    $("token-form").hidden = true;
    const llm = s.server && s.server.llm ? "answers by " + s.server.llm : "answers quote the documents (no LLM)";
    const n = (count, word) => `${count} ${word}${count === 1 ? "" : "s"}`;
    status.textContent = `${n(s.documents, "document")} · ${n(s.chunks, "passage")} · ${llm}`;
  } catch {
    status.textContent = "Cannot reach the server.";
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
    const flag = document.createElement("span");
    flag.className = "flag";
    flag.textContent = "unsupported: " + (u.reasons || []).join("; ");
    p.append(mark, flag);
    pos = end;
  }
  appendCited(p, text.slice(pos), links, byN);
  $("answer").replaceChildren(p);

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
    if (c.supported === false) {
      const flag = document.createElement("span");
      flag.className = "flag";
      flag.textContent = "unsupported";
      li.append(flag);
    }
    const quote = document.createElement("blockquote");
    quote.textContent = c.quote;
    li.append(quote);
    sources.append(li);
  }
  $("sources-section").hidden = result.citations.length === 0;

  const passages = $("passages");
  passages.replaceChildren();
  for (const h of result.hits) {
    const li = document.createElement("li");
    li.append(link(links.hits[String(h.rank)], cite(h)));
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    if (h.snippet != null) {
      summary.append(marked(h.snippet, h.snippet_highlights));
    } else {
      const flat = h.text.replace(/\s+/g, " ").trim();
      summary.textContent = flat.length > 160 ? flat.slice(0, 159) + "…" : flat;
    }
    const full = document.createElement("p");
    full.className = "passage";
    full.append(marked(h.text, h.highlights));
    details.append(summary, full);
    li.append(details);
    passages.append(li);
  }
  $("passages-section").hidden = result.hits.length === 0;
}

function showError(message) {
  const p = document.createElement("p");
  p.className = "error";
  p.textContent = message;
  $("answer").replaceChildren(p);
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

async function ask(question, k) {
  const answer = $("answer");
  const button = $("ask-button");
  const live = document.createElement("p");
  answer.replaceChildren(live);
  answer.setAttribute("aria-busy", "true");
  $("answer-note").textContent = "";
  $("sources-section").hidden = true;
  $("passages-section").hidden = true;
  button.disabled = true;
  try {
    const r = await fetch("/ask/stream", {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json", Accept: "text/event-stream" }),
      body: JSON.stringify({ question, k }),
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
        } else if (ev.event === "error") {
          showError(ev.data.detail);
        }
      }
    }
  } catch (e) {
    showError("The answer stopped: " + e.message);
  } finally {
    answer.setAttribute("aria-busy", "false");
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  if (token) setToken(token);
  loadStatus();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    setToken($("token").value.trim());
    $("token").value = "";
    loadStatus();
  });
  const question = $("question");
  question.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("ask-form").requestSubmit();
    }
  });
  $("ask-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = question.value.trim();
    if (q) ask(q, Math.min(20, Math.max(1, parseInt($("k").value, 10) || 5)));
  });
});
