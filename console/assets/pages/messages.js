// Messages: find by id, by key, by topic and time range; view a message's
// properties and body; resend it; and its life as the broker stored it.

import { h, fill, api, fmt, link, enc, act, guard, toast, table, errorBox, toLocalInput } from "../lib.js";

export default {
  title: "Messages",
  mount(root, r) {
    const q = r.query;
    const results = h("div");
    const view = h("div");
    root.append(h("h1", null, "Messages"), searchPanel(q), results, view);
    if (q.get("id")) showMessage(view, q.get("id"));
    else if (q.get("topic") && q.get("key")) searchByKey(results, q.get("topic"), q.get("key"));
    else if (q.get("topic") && q.get("begin")) searchByTime(results, q.get("topic"), +q.get("begin"), +q.get("end") || 0);
    return {};
  },
};

function searchPanel(q) {
  const mode = q.get("key") ? "key" : q.get("topic") ? "time" : "id";
  const forms = {
    id: h("form", { class: "row", id: "find-id" },
      h("label", null, "Message id (UNIQ_KEY or offset id)", h("input", { name: "msgid", size: 40, required: true, value: q.get("id") || "" })),
      h("button", { class: "primary" }, "Find")),
    key: h("form", { class: "row", id: "find-key" },
      h("label", null, "Topic", h("input", { name: "topic", required: true, value: q.get("topic") || "" })),
      h("label", null, "Key", h("input", { name: "key", required: true, value: q.get("key") || "" })),
      h("button", { class: "primary" }, "Find")),
    time: h("form", { class: "row", id: "find-time" },
      h("label", null, "Topic", h("input", { name: "topic", required: true, value: q.get("topic") || "" })),
      h("label", null, "From", h("input", { name: "begin", type: "datetime-local", step: 1, value: toLocalInput(+q.get("begin") || Date.now() - 3600000) })),
      h("label", null, "To", h("input", { name: "end", type: "datetime-local", step: 1, value: toLocalInput(+q.get("end") || Date.now() + 60000) })),
      h("button", { class: "primary" }, "Find")),
  };
  forms.id.addEventListener("submit", (ev) => { ev.preventDefault(); window.ferryNavigate("messages?id=" + enc(forms.id.msgid.value.trim())); });
  forms.key.addEventListener("submit", (ev) => {
    ev.preventDefault();
    window.ferryNavigate(`messages?topic=${enc(forms.key.topic.value.trim())}&key=${enc(forms.key.key.value.trim())}`);
  });
  forms.time.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = forms.time;
    window.ferryNavigate(`messages?topic=${enc(f.topic.value.trim())}&begin=${new Date(f.begin.value).getTime()}&end=${new Date(f.end.value).getTime()}`);
  });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const box = h("div");
  const select = (m) => {
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.mode === m);
    fill(box, forms[m]);
  };
  for (const [m, t] of [["id", "By id"], ["key", "By key"], ["time", "By topic and time"]]) {
    tabs.append(h("button", { type: "button", role: "tab", dataset: { mode: m }, onclick: () => select(m) }, t));
  }
  select(mode);
  return h("div", { class: "panel" }, tabs, box);
}

function resultsTable(box, msgs, what) {
  fill(box, h("div", { class: "panel", id: "results" }, h("h2", null, `${msgs.length} message${msgs.length === 1 ? "" : "s"} ${what}`), table([
    { title: "Message id", cell: (m) => link("messages?id=" + enc(m.msg_id), m.msg_id) },
    { title: "Queue", num: true, cell: (m) => m.queue_id },
    { title: "Offset", num: true, cell: (m) => fmt.num(m.queue_offset) },
    { title: "Tags", cell: (m) => m.tags },
    { title: "Keys", cell: (m) => m.keys.join(" ") },
    { title: "Stored", cell: (m) => fmt.time(m.stored_at_ms) },
    { title: "Body", cell: (m) => m.body_encoding === "utf8" ? m.body.slice(0, 80) : h("span", { class: "muted" }, "binary") },
  ], msgs, (m) => window.ferryNavigate("messages?id=" + enc(m.msg_id)))));
}

async function searchByKey(box, topic, key) {
  try {
    const res = await api("GET", `/v1/topics/${enc(topic)}/messages?key=${enc(key)}&max=100`);
    resultsTable(box, res.messages, `with key ${key} in ${topic}`);
  } catch (e) {
    fill(box, errorBox(e));
  }
}

async function searchByTime(box, topic, begin, end) {
  try {
    const res = await api("GET", `/v1/topics/${enc(topic)}/messages?begin_ms=${begin}&end_ms=${end}&max=200`);
    resultsTable(box, res.messages, `in ${topic} from ${fmt.time(begin)} to ${fmt.time(end)}` + (res.messages.length === 200 ? " (the first 200)" : ""));
  } catch (e) {
    fill(box, errorBox(e));
  }
}

function bodyBytes(m) {
  if (m.body_encoding === "base64") return Uint8Array.from(atob(m.body), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(m.body);
}

function hexDump(bytes) {
  const lines = [];
  for (let i = 0; i < bytes.length && i < 64 * 1024; i += 16) {
    const row = bytes.slice(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const text = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(i.toString(16).padStart(8, "0") + "  " + hex.padEnd(48) + "  " + text);
  }
  if (bytes.length > 64 * 1024) lines.push(`… ${fmt.num(bytes.length - 64 * 1024)} more bytes`);
  return lines.join("\n");
}

function bodyView(m) {
  const bytes = bodyBytes(m);
  let json = null;
  if (m.body_encoding === "utf8") {
    try { json = JSON.stringify(JSON.parse(m.body), null, 2); } catch { json = null; }
  }
  const views = {
    text: () => m.body_encoding === "utf8" ? m.body : "(not UTF-8 text; see hex)",
    json: () => json === null ? "(not JSON)" : json,
    hex: () => hexDump(bytes),
  };
  const pre = h("pre", { id: "body" });
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const select = (v) => {
    for (const b of tabs.children) b.classList.toggle("active", b.dataset.view === v);
    pre.textContent = views[v]();
  };
  for (const [v, t] of [["text", "Text"], ["json", "JSON"], ["hex", "Hex"]]) tabs.append(h("button", { type: "button", dataset: { view: v }, onclick: () => select(v) }, t));
  select(json !== null ? "json" : m.body_encoding === "utf8" ? "text" : "hex");
  return h("div", { class: "panel" }, h("div", { class: "spread" }, h("h2", null, `Body (${fmt.bytes(bytes.length)})`)), tabs, pre);
}

function propsTable(title, props) {
  const rows = Object.entries(props || {}).sort(([a], [b]) => a.localeCompare(b));
  return h("div", null, h("h3", null, title), table([{ title: "Name", cell: (r) => r[0] }, { title: "Value", cell: (r) => h("code", null, r[1]) }], rows));
}

async function showMessage(box, id) {
  let tr;
  try {
    tr = await api("GET", "/v1/messages/" + enc(id) + "/trace");
  } catch (e) {
    fill(box, errorBox(e));
    return;
  }
  const m = tr.message;
  fill(box, 
    h("div", { class: "split two" },
      h("div", null,
        h("div", { class: "panel", id: "message" }, h("h2", null, "Message ", h("code", null, m.msg_id)), h("dl", { class: "kv" },
          h("dt", null, "Topic"), h("dd", null, link("topics/" + enc(m.topic), m.topic)),
          h("dt", null, "Queue / offset"), h("dd", null, `${m.queue_id} / ${fmt.num(m.queue_offset)}`),
          h("dt", null, "Offset message id"), h("dd", null, h("code", null, m.offset_msg_id)),
          h("dt", null, "Commitlog offset"), h("dd", null, fmt.num(m.commitlog_offset)),
          h("dt", null, "Tags"), h("dd", null, m.tags || "–"),
          h("dt", null, "Keys"), h("dd", null, m.keys.length ? m.keys.map((k, i) => [i ? " " : "", link(`messages?topic=${enc(m.topic)}&key=${enc(k)}`, k)]) : "–"),
          h("dt", null, "Born"), h("dd", null, fmt.time(m.born_at_ms)),
          h("dt", null, "Stored"), h("dd", null, fmt.time(m.stored_at_ms)),
          h("dt", null, "Reconsume times"), h("dd", null, m.reconsume_times)),
        propsTable("Properties", m.properties), propsTable("System properties", m.system_properties)),
        bodyView(m)),
      h("div", null, lifePanel(tr), guard("message.resend", resendPanel(m)) || "")));
}

function lifePanel(tr) {
  const m = tr.message;
  const items = [];
  const item = (cls, when, ...what) => items.push([when, h("li", { class: cls }, h("div", { class: "muted" }, fmt.time(when)), h("div", null, ...what))]);
  if (tr.scheduled) {
    const s = tr.scheduled;
    const sp = s.system_properties || {};
    item("warn", s.stored_at_ms, `Stored for later delivery in ${s.topic}`, sp.DELAY ? ` at delay level ${sp.DELAY}` : "",
      sp.TIMER_DELIVER_MS ? `, due ${fmt.time(+sp.TIMER_DELIVER_MS)} (${fmt.until(+sp.TIMER_DELIVER_MS)})` : "", sp.REAL_TOPIC ? `; for topic ${sp.REAL_TOPIC}` : "");
  } else {
    item("ok", m.stored_at_ms, `Stored in ${m.topic}, queue ${m.queue_id} at offset ${fmt.num(m.queue_offset)} (commitlog ${fmt.num(m.commitlog_offset)}, broker ${m.offset_msg_id.slice(0, 12)}…)`);
  }
  for (const r of tr.retries) item("warn", r.stored_at_ms, `Retry ${r.reconsume_times} for group `, link("groups/" + enc(r.group), r.group), ` (${r.topic} offset ${fmt.num(r.queue_offset)})`);
  for (const d of tr.dead_letters) item("bad", d.stored_at_ms, "Moved to the dead-letter queue of ", link("dlq/" + enc(d.group), d.group), ` after ${d.reconsume_times - 1} retries`);
  for (const r of tr.resent) item("ok", r.stored_at_ms, `Stored again in ${r.topic} (queue ${r.queue_id}, offset ${fmt.num(r.queue_offset)})`);
  items.sort((a, b) => a[0] - b[0]);
  const groups = tr.groups.length ? table([
    { title: "Group", cell: (g) => link("groups/" + enc(g.group), g.group) },
    { title: "Committed offset", num: true, cell: (g) => fmt.num(g.committed_offset) },
    { title: "Consumed", cell: (g) => g.consumed ? h("span", { class: "badge ok" }, "yes") : h("span", { class: "badge" }, "not yet") },
  ], tr.groups) : h("p", { class: "empty" }, "No group has committed an offset on this queue.");
  const inDLQ = tr.dead_letters.length > 0;
  return h("div", { class: "panel", id: "life" }, h("h2", null, "Life of the message"),
    inDLQ ? h("div", { class: "alert bad" }, "In a dead-letter queue.") : null,
    h("ul", { class: "timeline" }, items.map((x) => x[1])),
    h("h3", null, "Consumption by group"), groups,
    h("p", { class: "muted" }, `Derived from the stored log: ${fmt.num(tr.scanned)} retry and dead-letter records read${tr.truncated ? " (stopped early: there may be more)" : ""}.`));
}

function resendPanel(m) {
  const sel = h("select", { name: "group", id: "resend-group" }, h("option", { value: "" }, "its topic (every group)"));
  api("GET", "/v1/groups").then((gs) => { for (const g of gs) sel.append(h("option", { value: g.name }, g.name)); }).catch(() => {});
  const out = h("div");
  const f = h("form", { class: "row", id: "resend-form" }, h("label", null, "Resend to", sel), h("button", { class: "primary" }, "Resend"));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = sel.value ? { group: sel.value } : {};
    const res = await act("message.resend", () => api("POST", "/v1/messages/" + enc(m.msg_id) + "/resend", body));
    fill(out, h("p", null, `Stored again in ${res.topic}, queue ${res.queue_id} at offset ${fmt.num(res.queue_offset)}.`));
    toast("Message resent.");
  });
  return h("div", { class: "panel" }, h("h2", null, "Resend"), f, out,
    h("p", { class: "muted" }, "To a group: a copy goes to its retry topic and only that group receives it."));
}
