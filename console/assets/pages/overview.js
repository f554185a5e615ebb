// Overview: the broker's status, live rate charts of the last 15 minutes
// and alerts.

import { h, fill, api, fmt, link, errorBox } from "../lib.js";
import { lineChart, growing } from "../chart.js";

export default {
  title: "Overview",
  mount(root) {
    const alerts = h("div", { id: "alerts" });
    const brokers = h("div", { class: "panel" });
    const charts = h("div", { class: "grid" });
    root.append(h("h1", null, "Overview"), alerts, brokers, charts);
    let diskMax = null;

    async function refresh() {
      let rt, stats, groups;
      try {
        if (diskMax === null) {
          const cfg = await api("GET", "/v1/broker/config").catch(() => ({}));
          diskMax = parseFloat(cfg.disk_max_used_ratio || "0.95");
        }
        [rt, stats, groups] = await Promise.all([api("GET", "/v1/broker"), api("GET", "/v1/broker/stats"), api("GET", "/v1/stats/groups")]);
      } catch (e) {
        fill(alerts, errorBox(e));
        return;
      }
      const list = [];
      if (rt.disk_used_ratio >= diskMax) list.push(["bad", `Disk full: ${(rt.disk_used_ratio * 100).toFixed(1)} % used (limit ${(diskMax * 100).toFixed(0)} %); sends are refused.`]);
      else if (rt.disk_used_ratio >= diskMax - 0.1) list.push(["", `Disk filling: ${(rt.disk_used_ratio * 100).toFixed(1)} % used (sends stop at ${(diskMax * 100).toFixed(0)} %).`]);
      if (!rt.writable) list.push(["bad", `Broker ${rt.broker_name} does not accept sends: ${rt.not_writable_reason}.`]);
      for (const g of groups) {
        if (growing(g.lag_history)) list.push(["", h("span", null, "Lag of group ", link("groups/" + encodeURIComponent(g.name), g.name), ` is growing: ${fmt.num(g.lag)} messages behind.`)]);
      }
      fill(alerts, ...(list.length
        ? list.map(([cls, text]) => h("div", { class: "alert " + cls }, text))
        : [h("div", { class: "alert ok" }, "No alerts: disk has room, the broker accepts sends, no group's lag is growing.")]));

      const disk = rt.disk_used_ratio;
      const role = rt.broker_id === 0 ? "master" : "slave " + rt.broker_id;
      fill(brokers, h("h2", null, "Brokers"), h("div", { class: "table-wrap" }, h("table", null,
        h("thead", null, h("tr", null, ["Broker", "Address", "Role", "Version", "Writable", "Disk used", "Uptime", "Topics", "Groups", "Producers", "Consumers", "In msg/s", "Out msg/s"]
          .map((t, i) => h("th", { class: i >= 7 ? "num" : null }, t)))),
        h("tbody", null, h("tr", null,
          h("td", null, h("strong", null, rt.broker_name), h("div", { class: "muted" }, rt.cluster_name)),
          h("td", null, rt.addr),
          h("td", null, role),
          h("td", null, rt.version),
          h("td", null, rt.writable ? h("span", { class: "badge ok" }, "yes") : h("span", { class: "badge bad", title: rt.not_writable_reason }, "no")),
          h("td", null, h("div", { class: "bar" + (disk >= diskMax ? " bad" : disk >= diskMax - 0.1 ? " warn" : "") }, barFill(disk)), h("span", { class: "muted" }, (disk * 100).toFixed(1) + " %")),
          h("td", null, fmt.dur(rt.uptime_seconds)),
          h("td", { class: "num" }, fmt.num(rt.topics)),
          h("td", { class: "num" }, fmt.num(rt.groups)),
          h("td", { class: "num" }, fmt.num(rt.producers)),
          h("td", { class: "num" }, fmt.num(rt.consumers)),
          h("td", { class: "num" }, fmt.rate(lastOf(stats.points, "msg_in_per_s"))),
          h("td", { class: "num" }, fmt.rate(lastOf(stats.points, "msg_out_per_s"))))))),
        h("p", { class: "muted" }, `Commitlog ${fmt.bytes(rt.commitlog_max_offset - rt.commitlog_min_offset)} kept; flush ${rt.flush}; ${fmt.num(rt.msg_in_total)} messages in, ${fmt.num(rt.msg_out_total)} out since start.`));

      const series = (key) => stats.points.map((p) => [p.at_ms, p[key]]);
      fill(charts, 
        h("div", { class: "panel" }, lineChart("Messages per second", [{ name: "in", points: series("msg_in_per_s") }, { name: "out", points: series("msg_out_per_s") }])),
        h("div", { class: "panel" }, lineChart("Bytes per second", [{ name: "in", points: series("bytes_in_per_s") }, { name: "out", points: series("bytes_out_per_s") }], { yfmt: (v) => fmt.bytes(v), floor: 1024, binary: true, note: "In: message bodies stored; out: stored records delivered to consumers." })));
    }
    return { refresh };
  },
};

function barFill(ratio) {
  const s = h("span");
  s.style.width = Math.min(100, Math.max(0, ratio * 100)).toFixed(1) + "%";
  return s;
}

function lastOf(points, key) { return points.length ? points[points.length - 1][key] : 0; }
