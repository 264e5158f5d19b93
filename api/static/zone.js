/* The merchant page: now vs usual, the next 2 hours, today's peak and quiet hours, last week, spending. */
"use strict";
(function () {
  const D = window.Drukte, cfg = D.cfg, $ = (id) => document.getElementById(id), el = D.el;
  const zone = encodeURIComponent(cfg.zone_id);
  let live = null, today = null, week = null, spending;

  function renderNow(now) {
    const key = live ? live.levelKey(now) : "unknown";
    D.setLevelClass($("now"), key);
    $("now").dataset.level = key;
    const big = $("now-level");
    if (big.dataset.level !== key) {
      big.replaceChildren(D.levelIcon(key), el("span", {}, D.levelLabel(key)));
      big.dataset.level = key;
    }
    const o = live && live.obj;
    if (!o || !o.as_of) {
      $("now-vs").replaceChildren(D.t("no_data"));
      for (const id of ["now-index", "now-visitors", "status"]) $(id).textContent = "";
      return;
    }
    if (key === "closed") {
      $("now-vs").replaceChildren();
      for (const id of ["now-index", "now-visitors"]) $(id).textContent = "";
      $("status").textContent = D.t("updated_at", {time: D.fmt.time(o.as_of)});
      return;
    }
    if (key === "unknown") {
      $("now-vs").replaceChildren(D.t("stale"));
      $("now-index").textContent = "";
      $("now-visitors").textContent = "";
      $("status").textContent = D.t("last_data", {time: D.fmt.time(o.as_of)});
      return;
    }
    $("now-vs").replaceChildren(D.arrowIcon(o.vs_usual || "usual"), el("span", {}, D.vsText(o.vs_usual)));
    $("now-index").textContent = o.privacy.suppressed ? D.t("suppressed") : o.index === null ? "" :
      `${D.t("index", {n: D.fmt.num(o.index)})} (${o.usual ? D.t("usual_band", {low: D.fmt.num(o.usual.low),
        high: D.fmt.num(o.usual.high)}) : D.t("index_help")})`;
    $("now-visitors").textContent = o.visitors ? D.t("visitors", {min: D.fmt.num(o.visitors.min),
      max: D.fmt.num(o.visitors.max), n: Math.round(o.window.seconds / 60)}) : "";
    const next = live.nextMin(now);
    $("status").textContent = D.t("updated_at", {time: D.fmt.time(o.as_of)}) + " · " +
      (next ? D.t("next_update", {n: next}) : D.t("next_update_soon"));
  }

  function renderForecast(now) {
    const list = $("forecast");
    const points = live && !live.stale(now) ? live.obj.forecast || [] : [];
    if (!points.length) { list.replaceChildren(el("li", {class: "empty-state"}, D.t("forecast_none"))); return; }
    const first = Date.parse(points[0].start);
    const every = points.filter((p) => (Date.parse(p.start) - first) % 1800000 === 0).slice(0, 5);
    list.replaceChildren(...every.map((p) => el("li", {},
      el("span", {class: "t"}, D.fmt.time(p.start)), D.badge(p.level),
      el("span", {class: "muted"}, p.index === null ? "" : D.t("index", {n: D.fmt.num(p.index)})))));
  }

  function renderHours() {
    const chips = (node, items) => node.replaceChildren(...(items.length ? items.map((s) => el("span", {class: "chip"}, s))
      : [el("span", {class: "empty-state"}, D.t("hours_none"))]));
    chips($("peak"), today ? today.peak_hours.map((p) => `${p.start}–${p.end}`) : []);
    chips($("quiet"), today ? today.quiet_hours.filter((h) => h >= "08:00" && h <= "20:00") : []);
  }

  function renderWeek(now) {
    const box = $("week");
    const rows = (week && week.windows || []).filter((w) => !w.suppressed && w.score !== null);
    if (!rows.length) { box.replaceChildren(el("p", {class: "empty-state"}, D.t("last_week_none"))); return; }
    const then = now - 7 * 86400000;
    let at = null;
    for (const w of rows) if (Date.parse(w.start) <= then) at = w;
    const peak = rows.reduce((a, b) => (b.score > a.score ? b : a));
    const items = [];
    if (at) items.push(el("li", {}, el("span", {}, D.t("last_week_now", {time: D.fmt.time(at.start)})),
                               D.badge(at.level)));
    items.push(el("li", {}, el("span", {}, D.t("last_week_peak", {time: D.fmt.time(peak.start)})), D.badge(peak.level)));
    box.replaceChildren(el("p", {class: "muted"}, D.fmt.date(then)), el("ul", {class: "rows"}, items));
  }

  function reason(cell) {
    const key = "reason_" + (cell.reason || "other");
    return cfg.messages[key] ? D.t(key) : D.t("reason_other");
  }

  function renderSpending() {
    const box = $("spending");
    const cells = spending ? [spending.all, ...(spending.sectors || [])] : [];
    if (!spending || cells.every((c) => c.suppressed && c.reason === "no_data")) {
      box.replaceChildren(el("p", {class: "empty-state", "data-state": "none"}, D.t("spending_none")));
      return;
    }
    const head = el("tr", {}, el("th", {scope: "col"}, D.t("sector")),
      el("th", {scope: "col", class: "num"}, D.t("spending_index")),
      el("th", {scope: "col"}, D.t("vs_header")),
      el("th", {scope: "col", class: "num"}, D.t("spend_per_visitor")));
    const body = cells.map((c, i) => el("tr", {},
      el("th", {scope: "row"}, i === 0 ? D.t("spending_all") : (c.label && c.label[cfg.lang]) || c.sector),
      el("td", {class: "num"}, c.suppressed ? reason(c) : D.fmt.num(c.index)),
      el("td", {}, c.suppressed || !c.vs_usual ? "–" : D.t("spend_" + c.vs_usual) +
        (c.structural_break ? ` (${D.t("break")})` : "")),
      el("td", {class: "num"}, c.suppressed ? "–" : D.fmt.num(c.spend_per_visitor))));
    const when = spending.window ? D.t("spending_window", {start: D.fmt.time(spending.window.start),
                                                           end: D.fmt.time(spending.window.end)}) : "";
    box.replaceChildren(el("div", {class: "table-wrap"}, el("table", {}, el("thead", {}, head), el("tbody", {}, body))),
                        el("p", {class: "muted"}, D.t("spending_help") + (when ? " · " + when : "")));
  }

  function render() {
    const now = Date.now();
    renderNow(now);
    renderForecast(now);
    D.chart($("chart"), today, live, now);
    const legend = $("legend");
    D.setLevelClass(legend, live ? live.levelKey(now) : "unknown");
    legend.replaceChildren(el("span", {}, el("i", {}), D.t("chart_usual")),
                           el("span", {}, el("i", {class: "live"}), D.t("chart_live")));
    renderHours();
    renderWeek(now);
    renderSpending();
  }

  async function load(what) {
    try {
      if (what === "today") today = await D.getJSON(`/v1/zones/${zone}/today`);
      if (what === "week") {
        const date = D.fmt.localDate(Date.now() - 7 * 86400000);
        week = await D.getJSON(`/v1/zones/${zone}/windows?date=${date}`);
      }
      if (what === "spending") spending = await D.getJSON(`/v1/zones/${zone}/spending`);
    } catch (e) { /* keep what we have; shown again on the next update */ }
    render();
  }

  D.privacyLine($("privacy"));
  D.connect(cfg.city_id, {
    onLive: (obj) => {
      if (obj.zone_id !== cfg.zone_id) return;
      const newer = !live || obj.as_of !== live.obj.as_of;
      live = new D.Live(obj);
      render();
      if (newer) load("today");
    },
    onSpending: (msg) => { if (msg.zone_id === cfg.zone_id) load("spending"); },
    onState: (ok) => {
      const b = $("banner"); b.textContent = ok ? "" : D.t("reconnecting"); b.classList.toggle("show", !ok);
      if (ok) load("spending");
    },
  });
  load("today"); load("week");
  setInterval(render, 5000);
})();
