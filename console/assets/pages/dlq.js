// Dead letters: browse a group's DLQ, view one, resend one or all (with
// progress), and see which were resent already.

import { h, fill, api, fmt, link, enc, act, guard, toast, confirmDialog, table, errorBox } from "../lib.js";

const page = 50;
const chunk = 20; // dead letters per resend request, for progress

export default {
  title: "Dead letters",
  mount(root, r) {
    const group = r.args[0] || "";
    const from = +r.query.get("from") || 0;
    const picker = h("div", { class: "panel" });
    const body = h("div");
    root.append(h("h1", null, "Dead letters", group ? [" / ", group] : null), picker, body);

    async function pick() {
      let groups;
      try {
        groups = await api("GET", "/v1/stats/groups");
      } catch (e) {
        fill(picker, errorBox(e));
        return;
      }
      const sel = h("select", { id: "dlq-group", "aria-label": "group" }, h("option", { value: "" }, "choose a group"),
        groups.map((g) => h("option", { value: g.name, selected: g.name === group }, `${g.name} (${fmt.num(g.dlq_messages)})`)));
      sel.addEventListener("change", () => window.ferryNavigate("dlq/" + enc(sel.value)));
      const withDead = groups.filter((g) => g.dlq_messages > 0);
      fill(picker, h("div", { class: "row" }, h("label", null, "Group", sel),
        withDead.length ? h("span", { class: "muted" }, "Groups with dead letters: ", withDead.map((g, i) => [i ? ", " : "", link("dlq/" + enc(g.name), g.name)])) : h("span", { class: "muted" }, "No group has dead letters.")));
    }

    async function refresh() {
      if (!group) return pick();
      let res;
      try {
        await pick();
        res = await api("GET", `/v1/groups/${enc(group)}/dlq?from=${from}&max=${page}`);
      } catch (e) {
        fill(body, errorBox(e));
        return;
      }
      render(res);
    }

    function render(res) {
      const list = res.dead_letters;
      const progress = h("div", { id: "resend-progress" });
      fill(body, h("div", { class: "panel" },
        h("div", { class: "spread" }, h("h2", null, `Offsets ${fmt.num(from)} to ${fmt.num(res.next)}`),
          h("div", { class: "row" },
            from > 0 ? link(`dlq/${enc(group)}?from=${Math.max(0, from - page)}`, "‹ newer") : null,
            list.length === page ? link(`dlq/${enc(group)}?from=${res.next}`, "older ›") : null,
            guard("dlq.resend", h("button", { class: "danger", id: "resend-all", onclick: () => resendAll(progress) }, "Resend all")))),
        progress,
        table([
          { title: "Offset", num: true, cell: (d) => d.queue_offset },
          { title: "Message id", cell: (d) => link("messages?id=" + enc(d.msg_id), d.msg_id) },
          { title: "Topic", cell: (d) => d.topic },
          { title: "Tags", cell: (d) => d.tags || "" },
          { title: "Keys", cell: (d) => d.keys || "" },
          { title: "Retries", num: true, cell: (d) => d.reconsume_times },
          { title: "Failed", cell: (d) => fmt.time(d.failed_at_ms) },
          { title: "Resent", cell: (d) => d.resent_at_ms ? h("span", { class: "badge ok", title: "to " + d.resent_to }, fmt.time(d.resent_at_ms)) : "" },
          // Each dead letter is resent once (the broker skips it after).
          { title: "", cell: (d) => d.resent_at_ms ? "" : guard("dlq.resend", h("button", { class: "resend-one", onclick: () => resend([d.queue_offset]) }, "Resend")) },
        ], list)));
    }

    async function resend(offsets) {
      const res = await act("dlq.resend", () => api("POST", `/v1/groups/${enc(group)}/dlq/resend`, { offsets }));
      toast(`${res.resent} dead letter${res.resent === 1 ? "" : "s"} resent${res.skipped ? `, ${res.skipped} resent before (skipped)` : ""}.`);
      await refresh();
    }

    // resendAll walks the whole DLQ a chunk at a time, showing progress.
    async function resendAll(box) {
      const head = await api("GET", `/v1/groups/${enc(group)}/dlq?from=0&max=1`);
      const stats = (await api("GET", "/v1/stats/groups")).find((g) => g.name === group);
      const total = stats ? stats.dlq_messages : 0;
      if (!(await confirmDialog(`Resend every dead letter of ${group}?`, `${fmt.num(total)} dead letters go back to their topics.`, "Resend all"))) return;
      const bar = h("progress", { max: total || 1, value: 0 });
      const label = h("span", null, "starting");
      fill(box, h("div", { class: "row" }, bar, label));
      let next = head.dead_letters.length ? head.dead_letters[0].queue_offset : 0, done = 0, skipped = 0;
      for (;;) {
        const batch = await api("GET", `/v1/groups/${enc(group)}/dlq?from=${next}&max=${chunk}`);
        if (!batch.dead_letters.length) break;
        const res = await act("dlq.resend", () => api("POST", `/v1/groups/${enc(group)}/dlq/resend`, { offsets: batch.dead_letters.map((d) => d.queue_offset) }));
        done += res.resent;
        skipped += res.skipped || 0;
        next = batch.next;
        bar.value = done + skipped;
        label.textContent = `${fmt.num(done + skipped)} of ${fmt.num(total)} done`;
      }
      const before = skipped ? `, ${fmt.num(skipped)} resent before (skipped)` : "";
      label.textContent = `${fmt.num(done)} resent${before}.`;
      toast(`${done} dead letters resent${before}.`);
    }

    return { refresh, rerender: refresh };
  },
};
