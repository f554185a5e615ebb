// Groups: lag and its trend, per-queue offsets and owners, connected
// clients, offset reset with a dry run first, retry and DLQ counts.

import { h, fill, api, fmt, link, enc, act, guard, toast, confirmDialog, table, errorBox, toLocalInput } from "../lib.js";
import { lineChart, sparkline, growing } from "../chart.js";

export default {
  title: "Groups",
  mount(root, r) {
    return r.args.length ? detail(root, r.args[0]) : list(root);
  },
};

function list(root) {
  const search = h("input", { type: "search", placeholder: "Search groups", "aria-label": "search groups" });
  const body = h("div");
  root.append(h("h1", null, "Consumer groups"), h("div", { class: "panel" }, h("div", { class: "spread" }, search), body));
  let data = [], cluster = null;
  search.addEventListener("input", render);
  function render() {
    const q = search.value.trim().toLowerCase();
    const rows = data.filter((g) => !q || g.name.toLowerCase().includes(q));
    fill(body, table([
      { title: "Group", cell: (g) => link("groups/" + enc(g.name), g.name) },
      { title: "Clients", num: true, cell: (g) => g.online_clients },
      ...(multi(cluster)
        ? [{ title: "Lag here", num: true, cell: (g) => fmt.num(g.lag) },
          { title: "Lag (cluster)", num: true, cell: (g) => clusterLagCell(cluster, g.name) }]
        : [{ title: "Lag", num: true, cell: (g) => fmt.num(g.lag) }]),
      { title: "Trend (15 min)", cell: (g) => [sparkline(g.lag_history), growing(g.lag_history) ? h("span", { class: "badge warn" }, "growing") : null] },
      { title: "Retrying", num: true, cell: (g) => fmt.num(g.retry_messages) },
      { title: "Dead letters", num: true, cell: (g) => g.dlq_messages ? link("dlq/" + enc(g.name), fmt.num(g.dlq_messages)) : "0" },
      { title: "Consume", cell: (g) => g.consume_enable ? "enabled" : h("span", { class: "badge warn" }, "disabled") },
    ], rows.slice(0, 500), (g) => window.ferryNavigate("groups/" + enc(g.name))),
    h("p", { class: "muted" }, `${fmt.num(rows.length)} groups.`, multi(cluster)
      ? ` Lag here is this broker's; the cluster's sums the ${cluster.brokers.length} masters${unreachable(cluster)}.` : ""));
  }
  async function refresh() {
    try {
      [data, cluster] = await Promise.all([api("GET", "/v1/stats/groups"), clusterGroups()]);
    } catch (e) {
      fill(body, errorBox(e));
      return;
    }
    render();
  }
  return { refresh, rerender: render };
}

// clusterGroups is GET /v1/cluster/groups, or null when it cannot be
// read (the page then shows this broker's lag alone).
async function clusterGroups() {
  try {
    return await api("GET", "/v1/cluster/groups");
  } catch (e) {
    return null;
  }
}

// multi says the cluster has more than one master to sum over.
function multi(cluster) { return !!cluster && cluster.brokers.length > 1; }

function unreachable(cluster) {
  const down = cluster.brokers.filter((b) => !b.reachable).map((b) => b.broker_name);
  return down.length ? `; not answering, left out: ${down.join(", ")}` : "";
}

// clusterGroup is a group's entry of GET /v1/cluster/groups.
export function clusterGroup(cluster, name) {
  return (cluster && cluster.groups.find((g) => g.name === name)) || { name, lag: 0, by_broker: {} };
}

function clusterLagCell(cluster, name) {
  const g = clusterGroup(cluster, name);
  const parts = Object.entries(g.by_broker).sort().map(([b, l]) => `${b}: ${fmt.num(l)}`);
  return h("span", { title: parts.join(", ") }, fmt.num(g.lag));
}

// owners assigns each queue of a topic to a consumer as RocketMQ's
// default strategy (allocate averagely) does: clients sorted by id, queues
// by id, consecutive ranges.
export function owners(clientIDs, queueIDs) {
  const out = {};
  const ids = [...clientIDs].sort(), qs = [...queueIDs].sort((a, b) => a - b);
  const n = ids.length, m = qs.length;
  ids.forEach((id, i) => {
    const mod = m % n;
    const size = m <= n ? 1 : (mod > 0 && i < mod ? Math.floor(m / n) + 1 : Math.floor(m / n));
    const start = mod > 0 && i < mod ? i * size : i * size + mod;
    for (let k = start; k < Math.min(start + size, m); k++) out[qs[k]] = id;
  });
  return out;
}

function detail(root, name) {
  const head = h("div");
  const lagBox = h("div", { class: "panel" });
  const clientsBox = h("div", { class: "panel" });
  const resetBox = h("div");
  root.append(h("h1", null, link("groups", "Groups"), " / ", name), head,
    h("div", { class: "split two" }, lagBox, h("div", null, clientsBox, resetBox)));
  let lag = null, topics = [];

  async function refresh() {
    let g, clients, cluster;
    try {
      const [all, l, c, cl] = await Promise.all([api("GET", "/v1/stats/groups"), api("GET", "/v1/groups/" + enc(name) + "/lag"), api("GET", "/v1/groups/" + enc(name) + "/clients"), clusterGroups()]);
      cluster = cl;
      g = all.find((x) => x.name === name);
      if (!g) throw new Error("no group " + name);
      lag = l;
      clients = c;
    } catch (e) {
      fill(head, errorBox(e));
      return;
    }
    const now = Date.now();
    const hist = g.lag_history.map((v, i) => [now - (g.lag_history.length - 1 - i) * 10000, v]);
    fill(head, h("div", { class: "grid" },
      h("div", { class: "panel" }, h("dl", { class: "kv" },
        h("dt", null, multi(cluster) ? "Lag on this broker" : "Total lag"), h("dd", null, h("strong", { id: "group-lag" }, fmt.num(g.lag)), growing(g.lag_history) ? h("span", { class: "badge warn" }, " growing") : null),
        multi(cluster) ? [h("dt", null, "Lag across the cluster"), h("dd", null, h("strong", { id: "group-cluster-lag" }, fmt.num(clusterGroup(cluster, name).lag)),
          h("div", { class: "muted", id: "group-lag-by-broker" }, cluster.brokers.map((b) => `${b.broker_name}: ${b.reachable ? fmt.num(clusterGroup(cluster, name).by_broker[b.broker_name] || 0) : "not answering"}`).join(" · ")))] : null,
        h("dt", null, "Online clients"), h("dd", null, g.online_clients),
        h("dt", null, "Consume"), h("dd", null, g.consume_enable ? "enabled" : "disabled", g.broadcast ? ", broadcast" : ""),
        h("dt", null, "Retry max times"), h("dd", null, g.retry_max_times),
        h("dt", null, "Retrying"), h("dd", null, fmt.num(g.retry_messages)),
        h("dt", null, "Dead letters"), h("dd", null, g.dlq_messages ? link("dlq/" + enc(name), fmt.num(g.dlq_messages)) : "0"))),
      h("div", { class: "panel" }, lineChart("Lag", [{ name: "lag", points: hist }], { yfmt: fmt.num, floor: 4 }))));

    const consumerIDs = clients.filter((c) => c.is_consumer).map((c) => c.client_id);
    const byTopic = {};
    for (const row of lag.rows) (byTopic[row.topic] = byTopic[row.topic] || []).push(row.queue_id);
    const own = {};
    for (const [t, qs] of Object.entries(byTopic)) own[t] = consumerIDs.length ? owners(consumerIDs, qs) : {};
    fill(lagBox, h("h2", null, "Queues"), table([
      { title: "Topic", cell: (r) => link("topics/" + enc(r.topic), r.topic) },
      { title: "Queue", num: true, cell: (r) => r.queue_id },
      { title: "Broker offset", num: true, cell: (r) => fmt.num(r.broker_offset) },
      { title: "Committed", num: true, cell: (r) => fmt.num(r.consumer_offset) },
      { title: "Lag", num: true, cell: (r) => fmt.num(r.lag) },
      { title: "In flight", num: true, cell: (r) => r.inflight },
      { title: "Owner", cell: (r) => own[r.topic][r.queue_id] || h("span", { class: "muted" }, "–") },
    ], lag.rows), consumerIDs.length ? h("p", { class: "muted" }, "Owners as the default allocation (averagely, by client id) assigns the queues.") : null);
    fill(clientsBox, h("h2", null, "Connected clients"), table([
      { title: "Client", cell: (c) => c.client_id },
      { title: "Address", cell: (c) => c.addr },
      { title: "Language", cell: (c) => c.language },
      { title: "Version", num: true, cell: (c) => c.version },
      { title: "Last heartbeat", cell: (c) => fmt.time(Date.parse(c.last_seen)) },
    ], clients));
    const t = Object.keys(byTopic).sort();
    if (!resetBox.childElementCount || t.join() !== topics.join()) {
      topics = t;
      renderReset();
    }
  }

  function renderReset() {
    fill(resetBox, guard("offset.reset", resetForm()) || "");
  }

  function resetForm() {
    const preview = h("div", { id: "reset-preview" });
    const value = h("span");
    const apply = h("button", { type: "button", class: "danger", disabled: true, id: "reset-apply" }, "Apply reset");
    const f = h("form", { class: "row", id: "reset-form" },
      topics.length
        ? h("label", null, "Topic", h("select", { name: "topic" }, topics.map((t) => h("option", null, t))))
        : h("label", null, "Topic", h("input", { name: "topic", required: true })),
      h("label", null, "Reset to", h("select", { name: "to" }, [["earliest", "earliest"], ["latest", "latest"], ["time", "a time"], ["offset", "an offset"]].map(([v, t]) => h("option", { value: v }, t)))),
      value,
      h("button", { class: "primary", id: "reset-preview-btn" }, "Preview"));
    let body = null;
    const setValue = () => {
      const to = f.to.value;
      fill(value, to === "time" ? h("label", null, "Time", h("input", { name: "value", type: "datetime-local", step: 1, value: toLocalInput(Date.now() - 3600000), required: true }))
        : to === "offset" ? h("label", null, "Offset", h("input", { name: "value", type: "number", min: 0, value: 0, required: true })) : "");
    };
    setValue();
    f.to.addEventListener("change", setValue);
    f.addEventListener("input", () => { apply.disabled = true; body = null; preview.replaceChildren(); });
    f.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      body = { topic: f.topic.value, to: f.to.value, execute: false };
      if (body.to === "time") body.value = new Date(f.value.value).getTime();
      if (body.to === "offset") body.value = +f.value.value;
      const res = await act("offset.reset", () => api("POST", "/v1/groups/" + enc(name) + "/offsets/reset", body));
      const moved = res.offsets.reduce((n, o) => n + (o.new - Math.max(0, o.old)), 0);
      fill(preview, h("h3", null, "Dry run: nothing changed yet"), table([
        { title: "Queue", num: true, cell: (o) => o.queue_id },
        { title: "Committed now", num: true, cell: (o) => o.old < 0 ? "none" : fmt.num(o.old) },
        { title: "After reset", num: true, cell: (o) => fmt.num(o.new) },
        { title: "Change", num: true, cell: (o) => (o.new - Math.max(0, o.old) > 0 ? "+" : "") + fmt.num(o.new - Math.max(0, o.old)) },
      ], res.offsets), h("p", { class: "muted" }, moved < 0 ? `${fmt.num(-moved)} messages will be consumed again.` : `${fmt.num(moved)} messages will be skipped.`));
      apply.disabled = false;
    });
    apply.addEventListener("click", async () => {
      if (!body) return;
      if (!(await confirmDialog(`Reset offsets of ${name}?`, `Commit the previewed offsets for topic ${body.topic}. The group's consumers must be stopped.`, "Apply reset"))) return;
      await act("offset.reset", () => api("POST", "/v1/groups/" + enc(name) + "/offsets/reset", { ...body, execute: true }));
      toast("Offsets reset.");
      apply.disabled = true;
      fill(preview, h("p", { id: "reset-done" }, "Offsets reset."));
      await refresh();
    });
    return h("div", { class: "panel" }, h("h2", null, "Reset offsets"), f, preview, h("div", { class: "row end" }, apply));
  }
  return { refresh, rerender: renderReset };
}
