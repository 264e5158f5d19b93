/* The city-screen widget: one zone, live through /v1/stream, unknown as soon as data is stale. */
"use strict";
(function () {
  const D = window.Drukte, cfg = D.cfg, $ = (id) => document.getElementById(id);
  let live = null, today = null, todayAt = 0, shownKey = null;
  const setText = (node, s) => { if (node.textContent !== s) node.textContent = s; };

  async function loadToday() {
    try { today = await D.getJSON(`/v1/zones/${encodeURIComponent(cfg.zone_id)}/today`); todayAt = Date.now(); }
    catch (e) { /* keep the last curve; the next update tries again */ }
    render();
  }

  function render() {
    const now = Date.now();
    setText($("clock"), D.fmt.time(now));
    const key = live ? live.levelKey(now) : "unknown";
    const panel = $("now");
    D.setLevelClass(panel, key);
    panel.dataset.level = key;
    if (key !== shownKey) { $("now-icon").replaceChildren(D.levelIcon(key)); shownKey = key; }
    setText($("now-label"), D.levelLabel(key));
    const vs = $("now-vs"), detail = $("now-detail"), status = $("status");
    if (!live || !live.obj.as_of) {
      if (vs.textContent !== D.t("no_data")) vs.replaceChildren(D.t("no_data"));
      setText(detail, "");
      setText(status, D.t("no_data"));
    } else if (key === "closed") {
      if (vs.textContent !== "") vs.replaceChildren();
      setText(detail, "");
      setText(status, D.t("updated_at", {time: D.fmt.time(live.obj.as_of)}));
    } else if (key === "unknown") {
      if (vs.textContent !== D.t("stale")) vs.replaceChildren(D.t("stale"));
      setText(detail, D.t("last_data", {time: D.fmt.time(live.obj.as_of)}));
      setText(status, D.t("last_data", {time: D.fmt.time(live.obj.as_of)}));
    } else {
      const o = live.obj;
      if (vs.textContent !== D.vsText(o.vs_usual) || vs.dataset.vs !== String(o.vs_usual)) {
        vs.replaceChildren(D.arrowIcon(o.vs_usual || "usual"), D.el("span", {}, D.vsText(o.vs_usual)));
        vs.dataset.vs = String(o.vs_usual);
      }
      setText(detail, o.privacy && o.privacy.suppressed ? D.t("suppressed")
        : o.index !== null ? `${D.t("index", {n: D.fmt.num(o.index)})} · ${D.t("index_help")}` : "");
      const next = live.nextMin(now);
      setText(status, D.t("updated_at", {time: D.fmt.time(o.as_of)}) + " · " +
        (next ? D.t("next_update", {n: next}) : D.t("next_update_soon")));
    }
    $("chart-title").textContent = D.t("chart_title");
    D.chart($("chart"), today, live, now);
    const legend = $("legend");
    D.setLevelClass(legend, key);
    legend.replaceChildren(D.el("span", {}, D.el("i", {}), D.t("chart_usual")),
                           D.el("span", {}, D.el("i", {class: "live"}), D.t("chart_live")));
  }

  function onLive(obj) {
    if (obj.zone_id !== cfg.zone_id) return;
    const newer = !live || obj.as_of !== live.obj.as_of;
    live = new D.Live(obj);
    render();
    if (newer) loadToday();  /* a new window: today's view has one more published window */
  }

  D.privacyLine($("privacy"));
  D.connect(cfg.city_id, {
    onLive,
    onState: (ok) => { const b = $("banner"); b.textContent = ok ? "" : D.t("reconnecting"); b.classList.toggle("show", !ok); },
  });
  loadToday();
  setInterval(() => {
    render();
    if (Date.now() - todayAt > 600000) loadToday();  /* a new day, a new curve */
  }, 1000);
})();
