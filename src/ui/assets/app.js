// The operator's page: refresh server-rendered parts, send the buttons' requests, show
// times in the browser's own time zone. No build step, no dependencies.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content;

function localTimes(root) {
  for (const t of root.querySelectorAll("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) {
      t.textContent = d.toLocaleString([], { dateStyle: "short", timeStyle: "medium" });
      t.title = t.getAttribute("datetime");
    }
  }
}

async function refresh(el) {
  // Leave a part alone while one of its requests runs or a detail is open.
  if (el.querySelector("button[disabled], details[open], .try-result:not(:empty)")) return;
  try {
    const r = await fetch(el.dataset.refresh, { headers: { Accept: "text/html" } });
    if (r.ok) {
      el.innerHTML = await r.text();
      localTimes(el);
    }
  } catch (_) { /* the next round tries again */ }
}

function startRefreshing() {
  for (const el of document.querySelectorAll("[data-refresh]")) {
    const every = Number(el.dataset.every || 3000);
    setInterval(() => { if (!document.hidden) refresh(el); }, every);
  }
}

function say(out, text, ok) {
  if (!out) return;
  out.textContent = text;
  out.className = "result " + (ok ? "ok" : "fail");
}

// What an API answer says, in one line.
function summary(status, body) {
  if (body && typeof body === "object") {
    if (Array.isArray(body.problems) && body.problems.length) {
      const each = body.problems.map((p) => `${p.path || "config"}${p.line ? " (line " + p.line + ")" : ""}: ${p.message}`);
      return "not reloaded, the running config goes on: " + each.join("; ");
    }
    if (body.error) return body.error;
    if (body.reloaded && body.report) {
      const r = body.report, parts = [];
      for (const k of ["added", "changed", "removed", "toggled"]) if (r[k].length) parts.push(`${k}: ${r[k].join(", ")}`);
      if (r.restart_needed.length) parts.push(`needs a restart: ${r.restart_needed.join(", ")}`);
      return "reloaded" + (parts.length ? ": " + parts.join("; ") : ": nothing changed");
    }
    if (body.detail) return (body.ok === false ? "failed: " : "ok: ") + body.detail;
    if (typeof body.requeued === "number") return `${body.requeued} requeued`;
    if (body.state) return "now " + body.state;
    if (typeof body.enabled === "boolean") return body.enabled ? "enabled" : "disabled: what waits stays held";
    if (body.released !== undefined) return body.was_quarantined ? "released" : "was not quarantined";
  }
  return status < 300 ? "done" : `failed (${status})`;
}

document.addEventListener("click", async (e) => {
  const b = e.target.closest("button[data-post]");
  if (!b) return;
  const out = document.getElementById(b.dataset.result);
  b.disabled = true;
  let changed = false;
  say(out, "working…", true);
  try {
    const headers = { "Content-Type": "application/json", Accept: "application/json" };
    if (csrf()) headers["X-CSRF-Token"] = csrf();
    const r = await fetch(b.dataset.post, { method: "POST", headers, body: b.dataset.body || "{}" });
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    say(out, summary(r.status, body), r.ok);
    changed = r.ok && b.classList.contains("toggle");
  } catch (err) {
    say(out, "the service did not answer: " + err, false);
  } finally {
    b.disabled = false;
  }
  // A change of state shows at once, not at the next refresh.
  const part = b.dataset.refreshes ? document.getElementById(b.dataset.refreshes) : b.closest("[data-refresh]");
  if ((changed || b.dataset.refreshes) && part) refresh(part);
});

function jsonHeaders(accept) {
  const headers = { "Content-Type": "application/json", Accept: accept };
  if (csrf()) headers["X-CSRF-Token"] = csrf();
  return headers;
}

// A dry run, answered as HTML by the service, shown in `out`.
async function showPreview(body, out) {
  out.innerHTML = "<p>previewing…</p>";
  try {
    const r = await fetch("/ui/preview", { method: "POST", headers: jsonHeaders("text/html"), body: JSON.stringify(body) });
    out.innerHTML = await r.text();
  } catch (err) {
    out.textContent = "the service did not answer: " + err;
  }
}

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-preview]");
  if (!b) return;
  const out = document.getElementById(b.dataset.result);
  if (out.innerHTML) { out.innerHTML = ""; return; } // a second click hides it
  showPreview(JSON.parse(b.dataset.preview), out);
});

document.addEventListener("change", (e) => {
  const select = e.target.closest("select[data-sample-switch]");
  if (select) location.href = "/try?event=" + encodeURIComponent(select.value);
});

document.addEventListener("submit", async (e) => {
  const form = e.target.closest("form[data-try]");
  if (!form) return;
  e.preventDefault();
  const out = document.getElementById("try-result");
  let data;
  try {
    data = JSON.parse(form.elements.data.value || "{}");
  } catch (err) {
    out.innerHTML = "";
    out.textContent = "The data is not JSON: " + err.message;
    out.className = "try-result fail";
    return;
  }
  out.className = "try-result";
  const event = form.elements.event.value;
  if (e.submitter && e.submitter.value === "send") {
    try {
      const r = await fetch("/api/v1/events", { method: "POST", headers: jsonHeaders("application/json"), body: JSON.stringify({ event, data }) });
      const body = await r.json().catch(() => null);
      out.textContent = r.ok
        ? `Sent: accepted as ${body.id}, handed to ${body.plugins} plugin instance(s)` + (body.duplicate ? " (a duplicate: nothing new sent)" : "")
        : summary(r.status, body);
      out.className = "try-result " + (r.ok ? "ok" : "fail");
    } catch (err) {
      out.textContent = "the service did not answer: " + err;
    }
    return;
  }
  showPreview({ event, data, enrich: form.elements.enrich.checked }, out);
});

document.addEventListener("toggle", async (e) => {
  const d = e.target;
  if (!(d instanceof HTMLDetailsElement) || !d.open || !d.dataset.load) return;
  const box = d.querySelector(".detail");
  try {
    const r = await fetch(d.dataset.load, { headers: { Accept: "text/html" } });
    box.innerHTML = r.ok ? await r.text() : `could not load (${r.status})`;
    localTimes(box);
  } catch (err) {
    box.textContent = "could not load: " + err;
  }
}, true);

// The settings form: send only what changed, as typed values; show each problem beside
// its field; on success show the new values (the page as the service now renders it).
function settingValue(el) {
  const kind = el.dataset.kind;
  if (kind === "bool") return el.checked;
  const v = el.value.trim();
  if (v === "") return null; // back to the config file's value or the default
  if (kind === "int" || kind === "number") return Number.isFinite(Number(v)) ? Number(v) : v;
  if (kind === "int_or_text") return /^-?\d+$/.test(v) ? Number(v) : v;
  if (kind === "list") return v.split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (kind === "json") return JSON.parse(v);
  return v;
}

function settingChanged(el) {
  if (el.dataset.secret) return el.value !== "";
  if (el.dataset.kind === "bool") return String(el.checked) !== el.dataset.initial;
  return el.value.trim() !== el.dataset.initial;
}

function showProblems(form, problems) {
  const loose = [];
  for (const p of problems) {
    const at = p.field && form.querySelector(`[data-problem-for="${CSS.escape(p.field)}"]`);
    if (at) {
      at.textContent = at.textContent ? at.textContent + "; " + p.message : p.message;
      at.closest("tr")?.classList.add("invalid");
    } else {
      loose.push((p.path || p.field || "config") + ": " + p.message);
    }
  }
  return loose;
}

async function saveSettings(form, body) {
  const out = document.getElementById("settings-result");
  for (const el of form.querySelectorAll("[data-problem-for]")) el.textContent = "";
  for (const tr of form.querySelectorAll("tr.invalid")) tr.classList.remove("invalid");
  say(out, "saving…", true);
  let r, answer = null;
  try {
    r = await fetch(form.dataset.settings, { method: "PATCH", headers: jsonHeaders("application/json"), body: JSON.stringify(body) });
    answer = await r.json().catch(() => null);
  } catch (err) {
    say(out, "the service did not answer: " + err, false);
    return;
  }
  if (!r.ok) {
    const loose = showProblems(form, (answer && answer.problems) || []);
    say(out, [(answer && answer.error) || `failed (${r.status})`, ...loose].join(" · "), false);
    return;
  }
  // The new values and where they come from, as the service renders them now.
  const page = await fetch(location.href, { headers: { Accept: "text/html" } }).then((p) => p.text()).catch(() => null);
  const fresh = page && new DOMParser().parseFromString(page, "text/html").getElementById("settings");
  if (fresh) form.innerHTML = fresh.innerHTML;
  const a = (answer && answer.applied) || {};
  const what = [...(a.changed || []), ...(a.toggled || [])];
  say(document.getElementById("settings-result"), "applied" + (what.length ? ": " + what.join(", ") + " now runs with it" : ""), true);
}

document.addEventListener("submit", (e) => {
  const form = e.target.closest("form[data-settings]");
  if (!form) return;
  e.preventDefault();
  const body = {};
  const bad = [];
  for (const el of form.querySelectorAll("[data-kind]")) {
    if (!settingChanged(el)) continue;
    try {
      body[el.name] = settingValue(el);
    } catch (err) {
      bad.push({ field: el.name, message: "is not JSON: " + err.message });
    }
  }
  const out = document.getElementById("settings-result");
  if (bad.length) {
    for (const el of form.querySelectorAll("[data-problem-for]")) el.textContent = "";
    showProblems(form, bad);
    say(out, "nothing was sent", false);
    return;
  }
  if (Object.keys(body).length === 0) {
    say(out, "nothing changed", true);
    return;
  }
  saveSettings(form, body);
});

document.addEventListener("click", (e) => {
  const b = e.target.closest("button[data-reset]");
  const form = b && b.closest("form[data-settings]");
  if (form) saveSettings(form, { [b.dataset.reset]: null });
});

localTimes(document);
startRefreshing();
