// The console's shell: routing between pages, sign-in, and polling the
// visible page (every 5 s, paused while the tab is hidden).

import { h, fill, auth, toast } from "./lib.js";
import overview from "./pages/overview.js";
import topics from "./pages/topics.js";
import groups from "./pages/groups.js";
import messages from "./pages/messages.js";
import dlq from "./pages/dlq.js";
import delayed from "./pages/delayed.js";

const pages = { overview, topics, groups, messages, dlq, delayed };
const pollMs = 5000;

let current = null; // {page, instance}
let timer = null;

// route splits the location into a page name, path arguments and the query.
function route() {
  const rest = location.pathname.replace(/^\/console\/?/, "");
  const parts = rest.split("/").filter(Boolean).map(decodeURIComponent);
  const name = parts.length && pages[parts[0]] ? parts[0] : "overview";
  return { name, args: parts.slice(1), query: new URLSearchParams(location.search) };
}

async function show() {
  clearTimeout(timer);
  if (current && current.instance && current.instance.unmount) current.instance.unmount();
  const r = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === r.name);
  const main = document.getElementById("main");
  main.replaceChildren();
  const page = pages[r.name];
  document.title = page.title + " · Ferry console";
  const instance = page.mount(main, r);
  current = { page, instance };
  await refresh();
}

async function refresh() {
  clearTimeout(timer);
  const mine = current;
  if (mine && mine.instance && mine.instance.refresh && !document.hidden) {
    try { await mine.instance.refresh(); } catch (e) { /* each page shows its own errors */ }
  }
  if (current === mine && mine.instance && mine.instance.refresh) timer = setTimeout(refresh, pollMs);
}

export function navigate(path) {
  history.pushState(null, "", "/console/" + path);
  show();
}
window.ferryNavigate = navigate;

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[data-link]");
  if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  ev.preventDefault();
  history.pushState(null, "", a.getAttribute("href"));
  show();
});
window.addEventListener("popstate", show);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); else clearTimeout(timer); });
document.addEventListener("ferry:denied", () => { if (current && current.instance && current.instance.rerender) current.instance.rerender(); });

// --- sign-in ---

let signingIn = null;

function sessionBox() {
  const box = document.getElementById("session");
  const user = auth.user();
  fill(box, user
    ? h("span", null, "Signed in as ", h("strong", null, user), " ", h("button", { onclick: () => { auth.clear(); sessionBox(); show(); } }, "Sign out"))
    : h("button", { onclick: () => askLogin("Sign in with an access key and secret key.") }, "Sign in"));
}

function askLogin(why) {
  if (signingIn) return signingIn;
  const d = document.getElementById("login");
  const form = document.getElementById("login-form");
  document.getElementById("login-why").textContent = why;
  signingIn = new Promise((resolve) => {
    const done = (ev) => {
      ev.preventDefault();
      auth.set(form.user.value, form.pass.value);
      form.pass.value = "";
      d.close();
      form.removeEventListener("submit", done);
      signingIn = null;
      sessionBox();
      resolve();
    };
    form.addEventListener("submit", done);
  });
  d.showModal();
  return signingIn;
}

// The sign-in form stays until signed in: requests wait on it.
document.getElementById("login").addEventListener("cancel", (ev) => ev.preventDefault());

auth.onUnauthorized = () => askLogin(auth.header() ? "The broker refused this account; sign in again." : "This broker asks for an account.");

sessionBox();
show().catch((e) => toast(e.message, true));
