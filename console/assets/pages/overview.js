// Overview: every broker of the cluster (GET /v1/cluster) with its status,
// replication state and live rate charts of the last 15 minutes, and
// alerts.

import { h, fill, api, fmt, link, errorBox } from "../lib.js";
import { lineChart, growing } from "../chart.js";

export default {
  title: "Overview",
  mount(root) {
    const alerts = h("div", { id: "alerts" });
    const brokers = h("div", { class: "panel" });
    const charts = h("div", { id: "charts" });
    root.append(h("h1", null, "Overview"), alerts, brokers, charts);
    let diskMax = null;

    async function refresh() {
      let cluster, groups;
      try {
        if (diskMax === null) {
          const cfg = await api("GET", "/v1/broker/config").catch(() => ({}));
          diskMax = parseFloat(cfg.disk_max_used_ratio || "0.95");
        }
        [cluster, groups] = await Promise.all([api("GET", "/v1/cluster"), api("GET", "/v1/stats/groups")]);
      } catch (e) {
        fill(alerts, errorBox(e));
        return;
      }
      const bs = cluster.brokers;
      fill(alerts, ...alertList(bs, groups, diskMax, cluster.namesrv_error).map(([cls, text]) => h("div", { class: "alert " + cls }, text)));
      fill(brokers, h("h2", null, bs.length === 1 ? "Broker" : `Brokers (${bs.length})`), brokerTable(bs, diskMax), footnote(bs));
      fill(charts, ...bs.filter((b) => b.reachable).map((b) => rateCharts(b, bs.length > 1)));
    }
    return { refresh };
  },
};

// alertList is the alerts for the brokers and groups, or the one "no
// alerts" line: [class, text or element] pairs.
export function alertList(bs, groups, diskMax, namesrvError) {
  const list = [];
  if (namesrvError) list.push(["bad", "The name servers did not answer; only this broker is shown: " + namesrvError]);
  for (const b of bs) {
    const who = bs.length > 1 ? `Broker ${b.broker_name}${b.broker_id ? " (" + b.broker_id + ")" : ""}` : `Broker ${b.broker_name}`;
    if (!b.reachable) {
      list.push(["bad", `${who} at ${b.addr} does not answer: ${b.error}`]);
      continue;
    }
    const pct = (b.disk_used_ratio * 100).toFixed(1);
    if (b.disk_used_ratio >= diskMax) list.push(["bad", `${who}: disk full, ${pct} % used (limit ${(diskMax * 100).toFixed(0)} %); sends are refused.`]);
    else if (b.disk_used_ratio >= diskMax - 0.1) list.push(["", `${who}: disk filling, ${pct} % used (sends stop at ${(diskMax * 100).toFixed(0)} %).`]);
    if (b.drained) list.push(["", `${who} is drained: it takes no sends while its consumers finish.`]);
    else if (!b.writable) list.push(["bad", `${who} does not accept sends: ${b.not_writable_reason}.`]);
    const r = b.replication;
    if (r && r.role && r.role !== "master" && r.in_sync === false) list.push(["", `${who} is out of sync with its master (${fmt.bytes(r.lag_bytes)} behind).`]);
  }
  for (const g of groups) {
    if (growing(g.lag_history)) list.push(["", h("span", null, "Lag of group ", link("groups/" + encodeURIComponent(g.name), g.name), ` is growing: ${fmt.num(g.lag)} messages behind.`)]);
  }
  if (!list.length) list.push(["ok", bs.length > 1
    ? `No alerts: all ${bs.length} brokers answer, have disk room and accept sends; no group's lag is growing.`
    : "No alerts: disk has room, the broker accepts sends, no group's lag is growing."]);
  return list;
}

// replicationText is a broker's replication state in a few words.
export function replicationText(r) {
  if (!r) return "";
  const parts = [];
  if (r.epoch !== undefined) parts.push("epoch " + r.epoch);
  if (r.role === "master") {
    if (Array.isArray(r.replicas)) parts.push(`${r.replicas.filter((x) => x.in_sync).length}/${r.replicas.length} replicas in sync`);
  } else {
    if (r.in_sync !== undefined) parts.push(r.in_sync ? "in sync" : "out of sync");
    if (r.lag_bytes !== undefined) parts.push("lag " + fmt.bytes(r.lag_bytes) + (r.lag_seconds !== undefined ? " / " + fmt.dur(r.lag_seconds) : ""));
  }
  return parts.join(" · ");
}

function brokerTable(bs, diskMax) {
  const cols = ["Broker", "Address", "Role", "Version", "Writable", "Disk used", "Uptime", "Topics", "Groups", h("span", { title: "producers / consumers connected" }, "Clients"), "In msg/s", "Out msg/s"];
  return h("div", { class: "table-wrap" }, h("table", { id: "brokers" },
    h("thead", null, h("tr", null, cols.map((t, i) => h("th", { class: i >= 7 ? "num" : null }, t)))),
    h("tbody", null, bs.map((b) => brokerRow(b, diskMax)))));
}

function brokerRow(b, diskMax) {
  const name = h("td", { class: "nowrap" }, h("strong", null, b.broker_name), b.self ? h("span", { class: "badge", title: "the broker this console is served by" }, "this") : null,
    h("div", { class: "muted" }, b.cluster + (b.broker_id ? " · id " + b.broker_id : "")));
  const addr = h("td", { class: "nowrap" }, b.addr, b.http_addr ? h("div", { class: "muted" }, "http " + b.http_addr) : null);
  const rep = replicationText(b.replication);
  const role = h("td", { class: "role" }, b.role, rep ? h("div", { class: "muted replication" }, rep) : null);
  if (!b.reachable) {
    return h("tr", { dataset: { broker: b.broker_name + "/" + b.broker_id } }, name, addr, role,
      h("td", { colspan: 9 }, h("span", { class: "badge bad", title: b.error }, "unreachable"), " ", h("span", { class: "muted" }, b.error)));
  }
  const disk = b.disk_used_ratio;
  return h("tr", { dataset: { broker: b.broker_name + "/" + b.broker_id } }, name, addr, role,
    h("td", null, b.version),
    h("td", null, b.writable ? h("span", { class: "badge ok" }, "yes")
      : h("span", { class: "badge bad", title: b.not_writable_reason }, b.drained ? "drained" : "no")),
    h("td", null, h("div", { class: "bar" + (disk >= diskMax ? " bad" : disk >= diskMax - 0.1 ? " warn" : "") }, barFill(disk)), h("span", { class: "muted" }, (disk * 100).toFixed(1) + " %")),
    h("td", null, fmt.dur(b.uptime_seconds)),
    h("td", { class: "num" }, fmt.num(b.topics)),
    h("td", { class: "num" }, fmt.num(b.groups)),
    h("td", { class: "num nowrap", title: `${b.producers} producers, ${b.consumers} consumers` }, `${fmt.num(b.producers)} / ${fmt.num(b.consumers)}`),
    h("td", { class: "num" }, fmt.rate(b.msg_in_per_s)),
    h("td", { class: "num" }, fmt.rate(b.msg_out_per_s)));
}

function footnote(bs) {
  const up = bs.filter((b) => b.reachable);
  const inRate = up.reduce((n, b) => n + b.msg_in_per_s, 0), outRate = up.reduce((n, b) => n + b.msg_out_per_s, 0);
  if (bs.length === 1 && up.length === 1) {
    const b = up[0];
    return h("p", { class: "muted" }, `Commitlog ${fmt.bytes(b.commitlog_max_offset - b.commitlog_min_offset)} kept; flush ${b.flush}; ${fmt.num(b.msg_in_total)} messages in, ${fmt.num(b.msg_out_total)} out since start.`);
  }
  return h("p", { class: "muted" }, `${up.length} of ${bs.length} brokers answer; together ${fmt.rate(inRate)} msg/s in, ${fmt.rate(outRate)} msg/s out. Each broker's figures come from its own HTTP API.`);
}

function rateCharts(b, named) {
  const pts = b.points || [];
  const series = (key) => pts.map((p) => [p.at_ms, p[key]]);
  const title = (t) => (named ? `${b.broker_name}${b.broker_id ? " (" + b.broker_id + ")" : ""}: ${t}` : t[0].toUpperCase() + t.slice(1));
  return h("div", { class: "grid broker-charts", dataset: { broker: b.broker_name + "/" + b.broker_id } },
    h("div", { class: "panel" }, lineChart(title("messages per second"), [{ name: "in", points: series("msg_in_per_s") }, { name: "out", points: series("msg_out_per_s") }])),
    h("div", { class: "panel" }, lineChart(title("bytes per second"), [{ name: "in", points: series("bytes_in_per_s") }, { name: "out", points: series("bytes_out_per_s") }], { yfmt: (v) => fmt.bytes(v), floor: 1024, binary: true, note: "In: message bodies stored; out: stored records delivered to consumers." })));
}

function barFill(ratio) {
  const s = h("span");
  s.style.width = Math.min(100, Math.max(0, ratio * 100)).toFixed(1) + "%";
  return s;
}
