/* Drukte: shared browser code of the pages. Text goes in with textContent only (never innerHTML). */
"use strict";
(function () {
  const cfg = JSON.parse(document.getElementById("drukte-config").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const LEVELS = ["quiet", "normal", "busy", "very_busy", "unknown", "closed"];

  function t(key, values) {
    let s = cfg.messages[key] || key;
    for (const [k, v] of Object.entries(values || {})) s = s.split("{" + k + "}").join(String(v));
    return s;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v; else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) node.setAttribute(k, v);
    for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c);
    return node;
  }

  const timeFmt = new Intl.DateTimeFormat(cfg.locale, {hour: "2-digit", minute: "2-digit", timeZone: cfg.timezone});
  const hourFmt = new Intl.DateTimeFormat(cfg.locale, {hour: "2-digit", hourCycle: "h23", timeZone: cfg.timezone});
  const dateFmt = new Intl.DateTimeFormat(cfg.locale, {weekday: "long", day: "numeric", month: "long",
                                                      timeZone: cfg.timezone});
  const hour24 = new Intl.DateTimeFormat("en-GB", {hour: "numeric", hourCycle: "h23", timeZone: cfg.timezone});
  const numFmt = new Intl.NumberFormat(cfg.locale);
  const pctFmt = new Intl.NumberFormat(cfg.locale, {style: "percent", maximumFractionDigits: 0});
  const fmt = {
    time: (v) => timeFmt.format(new Date(v)),
    hour: (v) => hourFmt.format(new Date(v)),
    date: (v) => dateFmt.format(new Date(v)),
    num: (n) => (n === null || n === undefined ? "–" : numFmt.format(n)),
    pct: (x) => (x === null || x === undefined ? "–" : pctFmt.format(x)),
    /* local hour (0–23) of an instant in the city's time zone */
    localHour: (v) => Number(hour24.format(new Date(v))) % 24,
    /* YYYY-MM-DD of an instant in the city's time zone */
    localDate: (v) => new Intl.DateTimeFormat("en-CA", {year: "numeric", month: "2-digit", day: "2-digit",
                                                        timeZone: cfg.timezone}).format(new Date(v)),
  };

  /* Icons: a person per level step, a question mark for unknown, a moon for closed; arrows for vs usual. */
  function person(x, s) {
    return [svg("circle", {cx: x, cy: 7 * s, r: 3.2 * s}),
            svg("path", {d: `M${x - 5 * s} ${22 * s}v-6a5 5 0 0 1 ${10 * s} 0v6z`})];
  }
  function levelIcon(key) {
    const box = svg("svg", {viewBox: "0 0 48 48", "aria-hidden": "true", focusable: "false", class: "lvl-icon"});
    const g = svg("g", {transform: "translate(0 12)"});
    if (key === "quiet") g.append(...person(24, 1.15));
    else if (key === "normal") g.append(...person(16, 1.1), ...person(32, 1.1));
    else if (key === "busy") g.append(...person(10, 1), ...person(24, 1), ...person(38, 1));
    else if (key === "very_busy") {
      g.setAttribute("transform", "translate(0 2)");
      g.append(...person(10, 1), ...person(24, 1), ...person(38, 1));
      const g2 = svg("g", {transform: "translate(0 20)"}, ...person(17, 1), ...person(31, 1));
      box.append(g2);
    } else if (key === "closed") {
      box.append(svg("path", {d: "M30 8a16 16 0 1 0 10 28A14 14 0 0 1 30 8z"}));
      return box;
    } else {
      box.append(svg("circle", {cx: 24, cy: 24, r: 20, fill: "none", stroke: "currentColor", "stroke-width": 4}),
                 svg("path", {d: "M18 19a6 6 0 1 1 9 5c-2 1-3 2-3 4v2", fill: "none", stroke: "currentColor",
                              "stroke-width": 4, "stroke-linecap": "round"}),
                 svg("circle", {cx: 24, cy: 36, r: 2.6}));
      box.setAttribute("class", "lvl-icon unknown-icon");
      return box;
    }
    box.append(g);
    return box;
  }
  function arrowIcon(vs) {
    const box = svg("svg", {viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false"});
    const d = vs === "busier" ? "M12 3l8 9h-5v9H9v-9H4z" : vs === "quieter" ? "M12 21l-8-9h5V3h6v9h5z"
      : "M3 9h18v2H3zm0 4h18v2H3z";
    box.append(svg("path", {d}));
    return box;
  }
  function lockIcon() {
    const box = svg("svg", {viewBox: "0 0 24 24", "aria-hidden": "true", focusable: "false"});
    box.append(svg("path", {d: "M7 10V7a5 5 0 0 1 10 0v3h1a1 1 0 0 1 1 1v9a1 1 0 0 1-1 1H6a1 1 0 0 1-1-1v-9a1 1 0 0 1 1-1zm2 0h6V7a3 3 0 0 0-6 0z"}));
    return box;
  }

  /* A live object as received, with its freshness followed on this screen's clock. */
  class Live {
    constructor(obj) { this.obj = obj; this.at = Date.now(); }
    ageS(now) {
      const a = this.obj.quality && this.obj.quality.age_s;
      return a === null || a === undefined ? null : a + Math.floor((now - this.at) / 1000);
    }
    stale(now) {
      const age = this.ageS(now);
      return !this.obj.as_of || this.obj.quality.stale || age === null || age > cfg.stale_after_s;
    }
    /* the level to show: unknown once stale, whatever the last value was */
    levelKey(now) {
      if (this.obj.level && this.obj.level.key === "closed") return "closed";  /* outside opening hours */
      return this.stale(now) ? "unknown" : this.obj.level.key;
    }
    nextMin(now) {
      const n = this.obj.next_update_in_s;
      if (n === null || n === undefined) return null;
      return Math.max(0, Math.ceil((n - (now - this.at) / 1000) / 60));
    }
  }

  function levelLabel(key) { return t("level_" + (LEVELS.includes(key) ? key : "unknown")); }
  function vsText(vs) { return vs ? t("vs_" + vs) : t("vs_none"); }
  function setLevelClass(node, key) {
    for (const k of LEVELS) node.classList.remove("lv-" + k);
    node.classList.add("lv", "lv-" + key);
  }
  function badge(key) {
    const b = el("span", {class: "badge lv lv-" + key, "data-level": key}, levelIcon(key), el("span", {}, levelLabel(key)));
    return b;
  }

  async function getJSON(url) {
    const resp = await fetch(url, {headers: {Accept: "application/json"}, cache: "no-store"});
    if (resp.status === 404) return null;
    if (!resp.ok) throw new Error(url + ": HTTP " + resp.status);
    return resp.json();
  }

  /* Server-Sent Events of a city: calls onLive(obj) per live event, onSpending(msg), onState(connected).
     EventSource resumes by itself (with Last-Event-ID); if the browser gives up (HTTP error), we start again. */
  function connect(cityId, handlers) {
    let source = null, wait = 1000;
    function open() {
      source = new EventSource("/v1/stream?city_id=" + encodeURIComponent(cityId));
      source.addEventListener("open", () => { wait = 1000; handlers.onState && handlers.onState(true); });
      source.addEventListener("live", (e) => handlers.onLive && handlers.onLive(JSON.parse(e.data)));
      source.addEventListener("spending", (e) => handlers.onSpending && handlers.onSpending(JSON.parse(e.data)));
      source.addEventListener("error", () => {
        handlers.onState && handlers.onState(false);
        if (source.readyState === EventSource.CLOSED) {
          setTimeout(open, wait);
          wait = Math.min(wait * 2, 30000);
        }
      });
    }
    open();
    /* a page left (or kept in the back-forward cache) must not hold a connection: browsers allow only six
       per server, and every tab of a screen shares them */
    window.addEventListener("pagehide", () => source && source.close());
    window.addEventListener("pageshow", (e) => { if (e.persisted) open(); });
    return () => source && source.close();
  }

  /* Today's chart: usual per hour as bars, the live score on the current hour (popular-times style). */
  function chart(container, today, live, now) {
    /* drawn at the container's own pixel size, so text in it keeps its CSS size on a phone and on a kiosk */
    const W = Math.max(300, Math.round(container.clientWidth || 720));
    const fill = container.dataset.fill === "height" && container.clientHeight > 120;  /* the kiosk's chart */
    const H = Math.max(180, Math.round(fill ? container.clientHeight : Math.min(W * 0.42, 300)));
    const fs = parseFloat(getComputedStyle(container).fontSize) || 14;
    const top = Math.round(fs * 2.2), bottom = Math.round(fs * 2), left = 4, right = 4;
    const byHour = new Map();
    for (const w of (today && today.windows) || []) {
      if (!w.usual) continue;
      const h = fmt.localHour(w.start);
      if (!byHour.has(h)) byHour.set(h, []);
      byHour.get(h).push(w.usual.score);
    }
    const key = live ? live.levelKey(now) : "unknown";
    const nowHour = fmt.localHour(now);
    let first = 9, last = 19;  /* shop hours, widened to every hour with a real usual and to now */
    const mean = (h) => byHour.get(h).reduce((a, b) => a + b, 0) / byHour.get(h).length;
    const peak = Math.max(0, ...[...byHour.keys()].map(mean));
    for (const h of byHour.keys()) if (mean(h) >= 0.08 * peak) { first = Math.min(first, h); last = Math.max(last, h); }
    first = Math.min(first, nowHour); last = Math.max(last, nowHour);
    const hours = [];
    for (let h = first; h <= last; h++) hours.push(h);
    const step = (W - left - right) / hours.length, bw = step * 0.78, plotH = H - top - bottom;
    const labelEvery = Math.max(1, Math.ceil((fs * 3.4) / step));  /* "08:00" never overlaps its neighbour */
    const root = svg("svg", {viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img"});
    const liveScore = live && key !== "unknown" && live.obj.score !== null ? live.obj.score : null;
    root.setAttribute("aria-label", t("chart_aria", {time: fmt.time(now), level: levelLabel(key)}));
    root.append(svg("line", {x1: left, x2: W - right, y1: top + plotH, y2: top + plotH, class: "base"}));
    hours.forEach((h, i) => {
      const vals = byHour.get(h);
      const usual = vals ? vals.reduce((a, b) => a + b, 0) / vals.length : 0;
      const x = left + i * step + (step - bw) / 2;
      const bh = Math.max(usual > 0 ? 3 : 0, (usual / 100) * plotH);
      root.append(svg("rect", {x, y: top + plotH - bh, width: bw, height: bh, rx: 3,
                               class: h === nowHour ? "bar now" : "bar"}));
      if (h === nowHour && liveScore !== null) {
        const lh = Math.max(3, (Math.min(liveScore, 110) / 100) * plotH);
        const lw = bw * 0.62;
        root.append(svg("rect", {x: x + (bw - lw) / 2, y: top + plotH - lh, width: lw, height: lh, rx: 3,
                                 class: "live", "data-score": liveScore}));
        const label = t("chart_live"), half = (label.length * fs * 0.33);
        root.append(svg("text", {x: Math.min(W - right - half, Math.max(left + half, x + bw / 2)),
                                 y: Math.max(fs, top + plotH - Math.max(lh, bh) - fs * 0.5),
                                 "text-anchor": "middle", class: "tag"}, label));
      }
      if ((h - first) % labelEvery === 0) {
        root.append(svg("text", {x: x + bw / 2, y: H - fs * 0.4, "text-anchor": "middle", class: "axis"},
                        String(h).padStart(2, "0") + ":00"));
      }
    });
    if (byHour.size === 0) {
      root.append(svg("text", {x: W / 2, y: top + plotH / 2, "text-anchor": "middle", class: "empty"},
                      t("chart_empty")));
    }
    container.replaceChildren(root);
    setLevelClass(container, key);
  }

  function privacyLine(node) {
    node.prepend(lockIcon());
  }

  window.Drukte = {cfg, t, el, svg, fmt, Live, levelIcon, arrowIcon, lockIcon, levelLabel, vsText, badge,
                   setLevelClass, getJSON, connect, chart, privacyLine, LEVELS};
})();
