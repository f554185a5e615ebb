// Small helpers shared by the pages: element building, formatting, the
// API client with its credentials, and the set of actions the account
// was refused.

// h builds an element: h("a", {href: "/x", onclick: f}, "text", child, [more]).
// Text is always set as text, never parsed as HTML.
export function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, kids);
  return el;
}

// fill replaces el's children (nulls and falses are skipped, as in h).
export function fill(el, ...kids) {
  el.replaceChildren();
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const k of kids) {
    if (k === null || k === undefined || k === false) continue;
    if (Array.isArray(k)) append(el, k);
    else el.append(k instanceof Node ? k : String(k));
  }
}

// svg builds an SVG element with attributes.
export function svg(tag, attrs, ...kids) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const k of kids.flat()) if (k !== null && k !== undefined) el.append(k instanceof Node ? k : String(k));
  return el;
}

// link is an in-console link handled by the router.
export function link(path, ...kids) {
  return h("a", { href: "/console/" + path, "data-link": true }, ...kids);
}

export const fmt = {
  num(n) { return n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"); },
  rate(n) {
    if (!n) return "0";
    return n >= 100 ? Math.round(n).toLocaleString("en-US") : n.toFixed(n >= 10 ? 1 : 2);
  },
  bytes(n) {
    if (!n) return "0 B";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + u[i];
  },
  time(ms) {
    if (!ms) return "–";
    const d = new Date(ms);
    const p = (x, w = 2) => String(x).padStart(w, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
  },
  clock(ms) {
    const d = new Date(ms);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  },
  clockSec(ms) {
    const d = new Date(ms);
    return fmt.clock(ms) + ":" + String(d.getSeconds()).padStart(2, "0");
  },
  dur(sec) {
    sec = Math.max(0, Math.round(sec));
    const d = Math.floor(sec / 86400), hh = Math.floor(sec % 86400 / 3600), m = Math.floor(sec % 3600 / 60), s = sec % 60;
    const two = (a, ua, b, ub) => (b ? `${a}${ua} ${b}${ub}` : `${a}${ua}`);
    if (d) return two(d, "d", hh, "h");
    if (hh) return two(hh, "h", m, "m");
    if (m) return two(m, "m", s, "s");
    return `${s}s`;
  },
  until(ms) {
    if (!ms) return "–";
    const s = (ms - Date.now()) / 1000;
    return s <= 0 ? "due now" : "in " + fmt.dur(s);
  },
};

// --- credentials ---

const authKey = "ferry.auth";
const deniedKey = "ferry.denied";

export const auth = {
  header() { return sessionStorage.getItem(authKey); },
  user() {
    const v = sessionStorage.getItem(authKey);
    if (!v) return "";
    try { return atob(v.slice(6)).split(":")[0]; } catch { return ""; }
  },
  set(user, pass) {
    const bytes = new TextEncoder().encode(user + ":" + pass);
    sessionStorage.setItem(authKey, "Basic " + btoa(String.fromCharCode(...bytes)));
    sessionStorage.removeItem(deniedKey);
  },
  clear() { sessionStorage.removeItem(authKey); sessionStorage.removeItem(deniedKey); },
  // onUnauthorized is set by the app: it shows the sign-in form and
  // resolves once the user signed in.
  onUnauthorized: null,
};

// --- actions the account may not take ---

function deniedSet() {
  try { return new Set(JSON.parse(sessionStorage.getItem(deniedKey) || "[]")); } catch { return new Set(); }
}

// can reports whether an action (e.g. "topic.write") was not refused yet.
export function can(action) { return !deniedSet().has(action); }

export function deny(action) {
  const s = deniedSet();
  s.add(action);
  sessionStorage.setItem(deniedKey, JSON.stringify([...s]));
  document.dispatchEvent(new CustomEvent("ferry:denied", { detail: action }));
}

// guard returns el, or nothing when the account was refused action.
export function guard(action, el) { return can(action) ? el : null; }

// --- the API ---

export class ApiError extends Error {
  constructor(status, problem, path) {
    super(problem && problem.detail ? problem.detail : `HTTP ${status} for ${path}`);
    this.status = status;
    this.problem = problem;
  }
}

// api calls the HTTP API; JSON in and out. A 401 shows the sign-in form
// and retries once signed in.
export async function api(method, path, body) {
  for (;;) {
    const headers = { Accept: "application/json", "X-Requested-With": "ferry-console" };
    const a = auth.header();
    if (a) headers.Authorization = a;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    if (resp.status === 401 && auth.onUnauthorized) {
      await auth.onUnauthorized();
      continue;
    }
    if (resp.status === 204) return null;
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!resp.ok) throw new ApiError(resp.status, data, path);
    return data;
  }
}

export const enc = encodeURIComponent;

// act runs a user action; a refusal (403) hides the action from then on,
// other errors are shown.
export async function act(action, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ApiError && e.status === 403) {
      deny(action);
      toast("Your account may not do this: " + e.message, true);
    } else {
      toast(e.message, true);
    }
    e.shown = true;
    throw e; // stops the caller; the handler below keeps it off the console
  }
}

// An action's failure was shown to the user already.
window.addEventListener("unhandledrejection", (ev) => { if (ev.reason && ev.reason.shown) ev.preventDefault(); });

export function toast(text, bad) {
  const t = h("div", { class: "toast" + (bad ? " bad" : "") }, text);
  document.getElementById("toasts").append(t);
  setTimeout(() => t.remove(), bad ? 8000 : 4000);
}

// confirm asks in a dialog; resolves true when confirmed. With typed set,
// the user must type that text first.
export function confirmDialog(title, body, okLabel = "Confirm", typed = "") {
  const d = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = okLabel;
  const box = document.getElementById("confirm-body");
  fill(box, h("p", null, body));
  if (typed) {
    const input = h("input", { "aria-label": "confirmation", placeholder: typed });
    ok.disabled = true;
    input.addEventListener("input", () => { ok.disabled = input.value !== typed; });
    box.append(h("p", { class: "muted" }, "Type ", h("code", null, typed), " to confirm."), input);
  } else {
    ok.disabled = false;
  }
  return new Promise((resolve) => {
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.returnValue = "";
    d.showModal();
  });
}

// table builds a table from column specs {title, num, cell(row)}.
export function table(cols, rows, onRow) {
  if (!rows.length) return h("div", { class: "empty" }, "Nothing here.");
  return h("div", { class: "table-wrap" }, h("table", null,
    h("thead", null, h("tr", null, cols.map((c) => h("th", { class: c.num ? "num" : null }, c.title)))),
    h("tbody", null, rows.map((r) => h("tr", { class: onRow ? "clickable" : null, onclick: onRow ? (ev) => { if (!ev.target.closest("a,button,input")) onRow(r); } : null },
      cols.map((c) => h("td", { class: c.num ? "num" : null }, c.cell(r))))))));
}

// errorBox shows a failed read.
export function errorBox(e) {
  if (e instanceof ApiError && e.status === 403) return h("div", { class: "alert bad" }, "Your account may not view this: " + e.message);
  return h("div", { class: "alert bad" }, "Could not load: " + e.message);
}

// toLocalInput turns ms into a datetime-local value.
export function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
