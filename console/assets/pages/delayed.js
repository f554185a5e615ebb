// Delayed messages: pending per delay level and for delivery times, and
// what is due next.

import { h, fill, api, fmt, table, errorBox } from "../lib.js";

export default {
  title: "Delayed",
  mount(root) {
    const body = h("div");
    root.append(h("h1", null, "Delayed messages"), body);
    async function refresh() {
      let d;
      try {
        d = await api("GET", "/v1/delayed");
      } catch (e) {
        fill(body, errorBox(e));
        return;
      }
      const levels = d.levels.reduce((n, l) => n + l.pending, 0);
      fill(body, 
        h("div", { class: "grid" },
          h("div", { class: "panel" }, h("dl", { class: "kv" },
            h("dt", null, "Waiting on delay levels"), h("dd", null, h("strong", { id: "delayed-levels" }, fmt.num(levels))),
            h("dt", null, "Waiting for a delivery time"), h("dd", null, h("strong", { id: "delayed-timer" }, fmt.num(d.timer.pending) + (d.timer.capped ? "+" : ""))),
            h("dt", null, "Next due"), h("dd", null, d.next_due_ms ? `${fmt.time(d.next_due_ms)} (${fmt.until(d.next_due_ms)})` : "nothing waiting"))),
          h("div", { class: "panel" }, h("h2", null, "Delivery times"), h("dl", { class: "kv" },
            h("dt", null, "Pending"), h("dd", null, fmt.num(d.timer.pending) + (d.timer.capped ? ` or more (counted up to ${fmt.num(d.timer.count_limit)})` : "")),
            h("dt", null, "Earliest due"), h("dd", null, d.timer.next_due_ms ? `${fmt.time(d.timer.next_due_ms)} (${fmt.until(d.timer.next_due_ms)})` : "–")))),
        h("div", { class: "panel" }, h("h2", null, "Delay levels"), table([
          { title: "Level", num: true, cell: (l) => l.level },
          { title: "Delay", cell: (l) => fmt.dur(l.delay_ms / 1000) },
          { title: "Pending", num: true, cell: (l) => fmt.num(l.pending) },
          { title: "Next due", cell: (l) => l.next_due_ms ? `${fmt.time(l.next_due_ms)} (${fmt.until(l.next_due_ms)})` : "–" },
        ], d.levels)));
    }
    return { refresh };
  },
};
