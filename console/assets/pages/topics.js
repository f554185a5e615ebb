// Topics: list with search, message counts and rates; a topic's queues,
// route and settings; create, update, delete; send a test message.

import { h, fill, api, fmt, link, enc, act, guard, toast, confirmDialog, table, errorBox } from "../lib.js";

const maxRows = 200;

export default {
  title: "Topics",
  mount(root, r) {
    return r.args.length ? detail(root, r.args[0]) : list(root);
  },
};

function list(root) {
  const search = h("input", { type: "search", placeholder: "Search topics", "aria-label": "search topics", id: "topic-search" });
  const showAll = h("input", { type: "checkbox", id: "topic-all" });
  const body = h("div");
  const createBox = h("div");
  root.append(h("h1", null, "Topics"), createBox,
    h("div", { class: "panel" }, h("div", { class: "spread" }, h("div", { class: "row" }, search,
      h("label", { class: "check" }, showAll, "retry, dead-letter and system topics"))), body));
  let data = [];
  search.addEventListener("input", render);
  showAll.addEventListener("change", render);

  function renderCreate() {
    fill(createBox, guard("topic.write", createForm(async (name) => { await refresh(); window.ferryNavigate("topics/" + enc(name)); })) || "");
  }

  function render() {
    const q = search.value.trim().toLowerCase();
    const rows = data.filter((t) => (showAll.checked || t.kind === "normal") && (!q || t.name.toLowerCase().includes(q)));
    fill(body, 
      table([
        { title: "Topic", cell: (t) => link("topics/" + enc(t.name), t.name) },
        { title: "Kind", cell: (t) => t.kind === "normal" ? "" : h("span", { class: "badge" }, t.kind) },
        { title: "Queues r/w", num: true, cell: (t) => `${t.read_queues} / ${t.write_queues}` },
        { title: "Perm", cell: (t) => t.perm },
        { title: "Messages", num: true, cell: (t) => fmt.num(t.messages) },
        { title: "In msg/s", num: true, cell: (t) => fmt.rate(t.in_per_s) },
        { title: "Out msg/s", num: true, cell: (t) => fmt.rate(t.out_per_s) },
      ], rows.slice(0, maxRows), (t) => window.ferryNavigate("topics/" + enc(t.name))),
      h("p", { class: "muted" }, rows.length > maxRows ? `Showing ${maxRows} of ${fmt.num(rows.length)} topics; refine the search.` : `${fmt.num(rows.length)} topics.`));
  }

  async function refresh() {
    try {
      data = await api("GET", "/v1/stats/topics");
    } catch (e) {
      fill(body, errorBox(e));
      return;
    }
    render();
  }
  renderCreate();
  return { refresh, rerender: () => { renderCreate(); render(); } };
}

function createForm(done) {
  const f = h("form", { class: "row", id: "create-topic" },
    h("label", null, "Name", h("input", { name: "topic", required: true, pattern: "[A-Za-z0-9_%\\|\\-]{1,127}", title: "letters, digits, %, |, - and _; at most 127" })),
    h("label", null, "Read queues", h("input", { name: "read", type: "number", min: 1, max: 1024, value: 8 })),
    h("label", null, "Write queues", h("input", { name: "write", type: "number", min: 1, max: 1024, value: 8 })),
    h("label", null, "Perm", h("select", { name: "perm" }, ["rw", "r", "w"].map((p) => h("option", null, p)))),
    h("label", { class: "check" }, h("input", { name: "order", type: "checkbox" }), "ordered"),
    h("button", { class: "primary" }, "Create topic"));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const name = f.topic.value.trim();
    await act("topic.write", () => api("POST", "/v1/topics", {
      name, read_queues: +f.read.value, write_queues: +f.write.value, perm: f.perm.value, order: f.order.checked,
    }));
    toast(`Topic ${name} created.`);
    f.reset();
    done(name);
  });
  return h("details", { class: "panel" }, h("summary", null, h("strong", null, "Create a topic")), h("div", { class: "row" }), f);
}

function detail(root, name) {
  const head = h("div");
  const queues = h("div", { class: "panel" });
  const side = h("div");
  root.append(h("h1", null, link("topics", "Topics"), " / ", name), head, h("div", { class: "split two" }, queues, side));
  let topic = null, rt = null;

  function renderSide() {
    if (!topic) return;
    fill(side, 
      h("div", { class: "panel" }, h("h2", null, "Route"), table([
        { title: "Broker", cell: () => rt.broker_name },
        { title: "Address", cell: () => rt.addr },
        { title: "Read queues", num: true, cell: () => topic.read_queues },
        { title: "Write queues", num: true, cell: () => topic.write_queues },
        { title: "Perm", cell: () => topic.perm },
      ], [topic]), h("p", { class: "muted" }, "As this broker serves it; the name server merges every broker's entry.")),
      guard("message.send", sendForm(name)) || "",
      guard("topic.write", editForm(topic)) || "");
  }

  async function refresh() {
    try {
      [topic, rt] = await Promise.all([api("GET", "/v1/topics/" + enc(name)), api("GET", "/v1/broker")]);
    } catch (e) {
      fill(head, errorBox(e));
      return;
    }
    const total = topic.queues.reduce((n, q) => n + (q.max_offset - q.min_offset), 0);
    fill(head, h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", null, "Queues"), h("dd", null, `${topic.read_queues} read / ${topic.write_queues} write`),
      h("dt", null, "Permission"), h("dd", null, topic.perm),
      h("dt", null, "Ordered"), h("dd", null, topic.order ? "yes" : "no"),
      h("dt", null, "Messages kept"), h("dd", null, fmt.num(total))),
    h("div", { class: "row end" }, link(`messages?topic=${enc(name)}&begin=${Date.now() - 3600000}&end=${Date.now() + 60000}`, "Messages of the last hour"))));
    fill(queues, h("h2", null, "Queues"), table([
      { title: "Queue", num: true, cell: (q) => q.queue_id },
      { title: "Min offset", num: true, cell: (q) => fmt.num(q.min_offset) },
      { title: "Max offset", num: true, cell: (q) => fmt.num(q.max_offset) },
      { title: "Messages", num: true, cell: (q) => fmt.num(q.max_offset - q.min_offset) },
      { title: "Last stored", cell: (q) => fmt.time(q.last_store_ms) },
    ], topic.queues));
    if (!side.childElementCount) renderSide();
  }
  return { refresh, rerender: renderSide };

  function editForm(t) {
    const f = h("form", { class: "stack", id: "edit-topic" },
      h("label", null, "Read queues", h("input", { name: "read", type: "number", min: 1, max: 1024, value: t.read_queues })),
      h("label", null, "Write queues", h("input", { name: "write", type: "number", min: 1, max: 1024, value: t.write_queues })),
      h("label", null, "Perm", h("select", { name: "perm" }, ["rw", "r", "w"].map((p) => h("option", { selected: p === t.perm }, p)))),
      h("div", { class: "row end" },
        h("button", { type: "button", class: "danger", id: "delete-topic", onclick: remove }, "Delete topic"),
        h("button", { class: "primary" }, "Update")));
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { read_queues: +f.read.value, write_queues: +f.write.value, perm: f.perm.value };
      const change = `Queues ${t.read_queues}/${t.write_queues} → ${body.read_queues}/${body.write_queues}, perm ${t.perm} → ${body.perm}.`;
      if (!(await confirmDialog(`Update topic ${name}?`, change, "Update"))) return;
      await act("topic.write", () => api("PUT", "/v1/topics/" + enc(name), body));
      toast(`Topic ${name} updated.`);
      side.replaceChildren();
      await refresh();
    });
    return h("div", { class: "panel" }, h("h2", null, "Settings"), f);
  }

  async function remove() {
    if (!(await confirmDialog(`Delete topic ${name}?`, "Its messages stay in the log until retention removes them, but no consumer can read them and the committed offsets are dropped.", "Delete", name))) return;
    await act("topic.write", () => api("DELETE", "/v1/topics/" + enc(name)));
    toast(`Topic ${name} deleted.`);
    window.ferryNavigate("topics");
  }
}

function sendForm(topic) {
  const result = h("div");
  const f = h("form", { class: "stack", id: "send-message" },
    h("label", null, "Body", h("textarea", { name: "body", required: true }, "hello from the console")),
    h("div", { class: "row" },
      h("label", null, "Tags", h("input", { name: "tags" })),
      h("label", null, "Keys (space separated)", h("input", { name: "keys" })),
      h("label", null, "Delay level", h("input", { name: "delay", type: "number", min: 0, max: 64, value: 0 }))),
    h("div", { class: "row end" }, h("button", { class: "primary" }, "Send")), result);
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const m = { body: f.body.value };
    if (f.tags.value.trim()) m.tags = f.tags.value.trim();
    const keys = f.keys.value.split(/\s+/).filter(Boolean);
    if (keys.length) m.keys = keys;
    if (+f.delay.value > 0) m.delay_level = +f.delay.value;
    const res = await act("message.send", () => api("POST", "/v1/topics/" + enc(topic) + "/messages", { messages: [m] }));
    const r = res.results[0];
    if (r.error) {
      toast(r.error.detail, true);
      return;
    }
    fill(result, h("p", { id: "sent" }, "Sent ", link("messages?id=" + enc(r.msg_id), r.msg_id),
      r.scheduled ? " (scheduled)" : ` to queue ${r.queue_id} at offset ${r.queue_offset}`, "."));
    toast("Message sent.");
  });
  return h("div", { class: "panel" }, h("h2", null, "Send a test message"), f);
}
