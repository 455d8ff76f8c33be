// The Duet dashboard: reads the JSON API of `duet serve` (docs/api.md) every 5 s and updates the
// page in place. Plain ES2020, no framework, no build step; charts by uPlot (global `uPlot`).
//
// Every displayed number carries data-raw="<the API's JSON number>" and the elements a test
// reads carry a stable data-testid (tests/browser/dashboard.mjs). <body data-loaded="true"> once
// the first refresh rendered without an error.
'use strict';

(() => {
  const REFRESH_MS = 5000;
  const FETCH_TIMEOUT_MS = 10000;
  const PROVISIONAL_FILL = 'rgba(100, 116, 139, 0.13)';
  const CONTROL_COLOR = '#64748b';
  const VARIANT_COLORS = ['#2563eb', '#d97706', '#059669', '#db2777', '#7c3aed', '#0891b2', '#65a30d'];

  // The three metrics the report tests against the control, in display order.
  const TESTED = [
    { key: 'conversion_rate_visitor', label: 'Conversion / visitor', noun: 'converts', unit: 'per visitor' },
    { key: 'conversion_rate_session', label: 'Conversion / session', noun: 'converts', unit: 'per session' },
    { key: 'revenue_per_visitor', label: 'Revenue / visitor', noun: 'earns', unit: 'per visitor' },
  ];

  // Hourly charts of the selected experiment.
  const CHARTS = [
    { metric: 'visitors', title: 'Visitors', fmt: 'int' },
    { metric: 'conversions', title: 'Conversions', fmt: 'int' },
    { metric: 'conversion_rate_session', title: 'Conversion rate per session', fmt: 'pct' },
    { metric: 'revenue_per_visitor', title: 'Revenue per visitor', fmt: 'money' },
  ];

  // ---- formatting -------------------------------------------------------------------------

  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const moneyFmt = new Intl.NumberFormat('en-US', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const DASH = '–';
  // Between a number and its unit, and inside "p = 0.05": a line never breaks there.
  const NBSP = '\u00a0';

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fmtInt = (v) => (isNum(v) ? intFmt.format(v) : DASH);
  const fmtMoney = (v) => (isNum(v) ? moneyFmt.format(v) : DASH);
  const fmtPct = (v, digits = 2) => (isNum(v) ? `${(v * 100).toFixed(digits)}${NBSP}%` : DASH);
  const fmtSignedPct = (v, digits = 1) => {
    if (!isNum(v)) return DASH;
    const s = (v * 100).toFixed(digits);
    return `${v > 0 && Number(s) !== 0 ? '+' : ''}${s}${NBSP}%`;
  };
  // "= 0.046", "< 0.001"
  const fmtPRel = (p) => {
    if (!isNum(p)) return `=${NBSP}${DASH}`;
    if (p < 0.001) return `<${NBSP}0.001`;
    return `=${NBSP}${p >= 0.1 ? p.toFixed(2) : p.toPrecision(2)}`;
  };
  const fmtP = (p) => (isNum(p) ? fmtPRel(p).replace(`=${NBSP}`, '') : DASH);
  const fmtConfidence = (c) => `${isNum(c) ? Number((c * 100).toFixed(2)) : 95}${NBSP}%`;
  const FORMATS = { int: fmtInt, pct: (v) => fmtPct(v, 2), money: fmtMoney };

  const pad2 = (n) => String(n).padStart(2, '0');
  const parseTime = (iso) => (iso ? Date.parse(iso) : NaN);
  // "2026-11-01 05:00 UTC"
  const fmtUtc = (iso, seconds = false) => {
    const t = parseTime(iso);
    if (!Number.isFinite(t)) return DASH;
    const d = new Date(t);
    const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}${seconds ? `:${pad2(d.getUTCSeconds())}` : ''}`;
    return `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())} ${hm} UTC`;
  };
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const fmtDay = (d) => `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]}`;
  const fmtHm = (d) => `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  // "1 Nov 00:00 → 2 Nov 05:00 UTC"
  const fmtRange = (a, b) => {
    const ta = parseTime(a);
    const tb = parseTime(b);
    if (!Number.isFinite(ta) || !Number.isFinite(tb)) return DASH;
    const da = new Date(ta);
    const db = new Date(tb);
    const end = fmtDay(da) === fmtDay(db) ? fmtHm(db) : `${fmtDay(db)} ${fmtHm(db)}`;
    return `${fmtDay(da)} ${fmtHm(da)} → ${end} UTC`;
  };
  // Time-axis labels in UTC, 24 h; the day under the first label and wherever it changes.
  const timeAxisValues = (u, splits) => splits.map((s, i) => {
    const d = new Date(s * 1000);
    const prev = i > 0 ? new Date(splits[i - 1] * 1000) : null;
    return !prev || fmtDay(prev) !== fmtDay(d) ? `${fmtHm(d)}\n${fmtDay(d)}` : fmtHm(d);
  });
  const fmtLocalClock = (d) => `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  const fmtDuration = (s) => {
    if (!isNum(s)) return DASH;
    const neg = s < 0;
    let a = Math.abs(s);
    let out;
    if (a < 60) out = `${a < 10 ? a.toFixed(1) : Math.round(a)} s`;
    else if (a < 3600) out = `${Math.floor(a / 60)} min ${Math.round(a % 60)} s`;
    else if (a < 86400) out = `${Math.floor(a / 3600)} h ${Math.floor((a % 3600) / 60)} min`;
    else {
      a = Math.round(a / 3600);
      out = `${Math.floor(a / 24)} d ${a % 24} h`;
    }
    return neg ? `-${out}` : out;
  };

  // ---- DOM helpers ------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(c);
    return e;
  }

  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }
  function setAttr(e, name, value) {
    const v = String(value);
    if (e.getAttribute(name) !== v) e.setAttribute(name, v);
  }
  // A formatted number with the API's exact value next to it.
  function setNum(e, raw, text) {
    setAttr(e, 'data-raw', raw === undefined || raw === null ? 'null' : String(raw));
    setText(e, text);
  }
  function setClass(e, base, extra) {
    const c = extra ? `${base} ${extra}` : base;
    if (e.className !== c) e.className = c;
  }

  // Keeps the children of `parent` equal to one element per key, in order: existing elements
  // are reused (and updated), so a refresh changes text, not structure, and nothing flickers.
  function reconcile(parent, keys, create, update) {
    const existing = new Map();
    for (const c of Array.from(parent.children)) existing.set(c.dataset.key, c);
    keys.forEach((key, i) => {
      let e = existing.get(key);
      if (e) existing.delete(key);
      else {
        e = create(key);
        e.dataset.key = key;
      }
      if (parent.children[i] !== e) parent.insertBefore(e, parent.children[i] || null);
      update(e, key, i);
    });
    for (const e of existing.values()) e.remove();
  }

  // ---- API ----------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(path, status, title, detail) {
      super(detail || title || `HTTP ${status}`);
      this.path = path;
      this.status = status;
      this.title = title;
      this.detail = detail;
    }
    describe() {
      const head = this.status ? `${this.status} ${this.title || ''}`.trim() : 'request failed';
      return `GET /${this.path}: ${head}${this.detail ? ` — ${this.detail}` : ''}`;
    }
  }

  // Relative paths: the dashboard works wherever the server mounts it.
  async function fetchJson(path) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), FETCH_TIMEOUT_MS);
    let res;
    try {
      res = await fetch(path, { signal: ctl.signal, headers: { Accept: 'application/json' }, cache: 'no-store' });
    } catch (e) {
      const why = e.name === 'AbortError' ? `no answer within ${FETCH_TIMEOUT_MS / 1000} s` : 'the server cannot be reached';
      throw new ApiError(path, 0, '', why);
    } finally {
      clearTimeout(timer);
    }
    const text = await res.text();
    let body = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch (e) {
      if (res.ok) throw new ApiError(path, res.status, res.statusText, 'the answer is not JSON');
    }
    if (!res.ok) {
      const p = body && typeof body === 'object' ? body : {};
      throw new ApiError(path, res.status, p.title || res.statusText, p.detail || text.slice(0, 200));
    }
    return body;
  }

  // ---- state ----------------------------------------------------------------------------------

  const state = {
    selected: null, // experiment id
    experiments: [],
    lastOk: null, // Date of the last refresh without errors
    generation: 0,
    timer: null,
    loaded: false,
  };

  function hashExperiment() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ''));
    const id = params.get('experiment');
    return id ? id : null;
  }
  const experimentHash = (id) => `#experiment=${encodeURIComponent(id)}`;

  // ---- colours --------------------------------------------------------------------------------

  function variantColors(names, control) {
    const colors = new Map();
    let i = 0;
    for (const n of names) {
      if (n === control) colors.set(n, CONTROL_COLOR);
      else colors.set(n, VARIANT_COLORS[i++ % VARIANT_COLORS.length]);
    }
    return colors;
  }

  // ---- charts ---------------------------------------------------------------------------------

  const charts = new Map(); // container id -> {plot, sig, finalBefore, el}

  const chartHeight = (e) => (e.clientWidth < 500 ? 170 : 210);
  const hourSeconds = (iso) => parseTime(iso) / 1000;

  // Draws or updates one uPlot chart in `container`: x are epoch seconds, one line per series.
  // The hours at and after `finalBefore` are shaded: the speed layer may still change them.
  function drawChart(container, { xs, series, fmt, finalBefore }) {
    const id = container.id;
    const format = FORMATS[fmt];
    const sig = JSON.stringify([fmt, series.map((s) => [s.label, s.color])]);
    const data = [xs, ...series.map((s) => s.values)];
    let c = charts.get(id);
    if (c && c.sig === sig) {
      c.finalBefore = finalBefore;
      c.plot.setData(data);
      return;
    }
    if (c) c.plot.destroy();
    c = { sig, finalBefore, el: container };
    const width = Math.max(container.clientWidth, 200);
    const opts = {
      width,
      height: chartHeight(container),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      scales: { x: { time: true } },
      series: [
        {
          label: 'Hour (UTC)',
          value: (u, v) => (v === null || v === undefined ? DASH : fmtUtc(new Date(v * 1000).toISOString())),
        },
        ...series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          spanGaps: false,
          points: { size: 5, fill: s.color },
          value: (u, v) => format(v),
        })),
      ],
      axes: [
        { stroke: '#475569', values: timeAxisValues, grid: { stroke: '#e2e8f0', width: 1 }, ticks: { stroke: '#cbd5e1', width: 1 } },
        {
          stroke: '#475569',
          size: 64,
          grid: { stroke: '#e2e8f0', width: 1 },
          ticks: { stroke: '#cbd5e1', width: 1 },
          values: (u, splits) => splits.map((v) => (fmt === 'pct' ? fmtPct(v, 1) : format(v))),
        },
      ],
      hooks: {
        drawClear: [
          (u) => {
            if (c.finalBefore === null || c.finalBefore === undefined) return;
            const { left, top, width: w, height: h } = u.bbox;
            // Points sit on hour starts: the shade begins half an hour before the first
            // provisional one.
            const x0 = Math.max(left, u.valToPos(c.finalBefore - 1800, 'x', true));
            if (x0 >= left + w) return;
            u.ctx.save();
            u.ctx.fillStyle = PROVISIONAL_FILL;
            u.ctx.fillRect(x0, top, left + w - x0, h);
            u.ctx.restore();
          },
        ],
      },
    };
    container.replaceChildren();
    c.plot = new uPlot(opts, data, container);
    charts.set(id, c);
  }

  function dropChart(container, message) {
    const c = charts.get(container.id);
    if (c) {
      c.plot.destroy();
      charts.delete(container.id);
    }
    container.replaceChildren(el('p', { class: 'chart-empty muted', text: message }));
  }

  const resizeObserver = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const c = charts.get(entry.target.id);
      if (!c) continue;
      const width = Math.max(Math.floor(entry.contentRect.width), 200);
      const height = chartHeight(entry.target);
      if (c.plot.width !== width || c.plot.height !== height) c.plot.setSize({ width, height });
    }
  });

  // ---- header, banners --------------------------------------------------------------------------

  function renderStatus(status) {
    setText($('fresh-as-of'), fmtUtc(status.as_of, true));
    setAttr($('fresh-as-of'), 'title', status.refresh && isNum(status.refresh.age_s)
      ? `views read from the store ${fmtDuration(status.refresh.age_s)} ago` : '');

    const batch = status.batch || {};
    setText($('fresh-hwm'), batch.high_water_mark ? fmtUtc(batch.high_water_mark) : 'no batch run yet');

    const speed = status.speed || {};
    const lag = $('fresh-lag');
    setNum(lag, speed.event_time_lag_s, isNum(speed.event_time_lag_s) ? fmtDuration(speed.event_time_lag_s) : 'no micro-batch yet');
    setAttr(lag, 'title', speed.max_event_time
      ? `newest event time applied: ${fmtUtc(speed.max_event_time, true)}; hours from ${fmtUtc(speed.final_before)} are provisional`
      : 'the speed layer has not applied a micro-batch yet');

    const run = batch.last_run;
    const runEl = $('fresh-run');
    if (run) {
      setText(runEl, `#${run.generation} · ${fmtUtc(run.finished_at || run.started_at)} · ${fmtDuration(run.duration_s)}`);
      setAttr(runEl, 'title', `generation ${run.generation}: ${fmtInt(run.lines)} lines of ${run.input || DASH}, started ${fmtUtc(run.started_at, true)}`);
    } else {
      setText(runEl, 'none yet');
      setAttr(runEl, 'title', '');
    }

    const warn = $('refresh-warning');
    const lastError = status.refresh && status.refresh.last_error;
    if (lastError) {
      setText(warn, `The server could not refresh its views from the store: ${lastError}. Showing the views as of ${fmtUtc(status.as_of, true)}.`);
      warn.hidden = false;
    } else {
      warn.hidden = true;
    }
  }

  function renderErrors(errors) {
    const banner = $('errors');
    if (errors.length === 0) {
      banner.hidden = true;
      banner.replaceChildren();
      return;
    }
    // One line per distinct answer: an unknown experiment fails its report and every chart alike.
    const groups = new Map();
    for (const e of errors) {
      const key = e instanceof ApiError ? `${e.status} ${e.detail}` : String(e && e.message ? e.message : e);
      const g = groups.get(key);
      if (g) g.more += 1;
      else groups.set(key, { text: e instanceof ApiError ? e.describe() : key, more: 0 });
    }
    const items = Array.from(groups.values()).map((g) => el('li', {
      text: g.more ? `${g.text} (and ${g.more} more request${g.more === 1 ? '' : 's'} alike)` : g.text,
    }));
    banner.replaceChildren(
      el('strong', { text: errors.length === 1 ? 'The API answered with an error' : `The API answered with ${errors.length} errors` }),
      el('ul', {}, ...items),
    );
    banner.hidden = false;
  }

  function renderUpdated(ok) {
    const now = new Date();
    if (ok) {
      state.lastOk = now;
      setText($('updated'), `updated ${fmtLocalClock(now)}`);
      setClass($('updated'), 'updated');
    } else {
      const since = state.lastOk ? `; data from ${fmtLocalClock(state.lastOk)}` : '';
      setText($('updated'), `update failed ${fmtLocalClock(now)}${since}`);
      setClass($('updated'), 'updated', 'updated-failed');
    }
  }

  // ---- experiment list --------------------------------------------------------------------------

  function renderExperiments(doc) {
    const list = $('experiment-list');
    const exps = doc.experiments || [];
    $('experiment-empty').hidden = exps.length > 0;
    reconcile(
      list,
      exps.map((e) => e.id),
      (id) => {
        const a = el('a', { href: experimentHash(id), class: 'exp-link' },
          el('span', { class: 'exp-name', text: id }),
          el('span', { class: 'exp-figures' },
            el('span', { 'data-field': 'visitors', 'data-testid': `experiment-${id}-visitors` }),
            ' visitors · ',
            el('span', { 'data-field': 'variants' }),
            ' variants'),
          el('span', { class: 'exp-range muted', 'data-field': 'range' }));
        return el('li', { 'data-testid': `experiment-${id}`, class: 'exp' }, a);
      },
      (li, id, i) => {
        const e = exps[i];
        const q = (f) => li.querySelector(`[data-field="${f}"]`);
        setNum(q('visitors'), e.visitors, fmtInt(e.visitors));
        setNum(q('variants'), (e.variants || []).length, String((e.variants || []).length));
        setText(q('range'), e.first_seen ? fmtRange(e.first_seen, e.last_seen) : 'no sessions yet');
        const selected = id === state.selected;
        setClass(li, 'exp', selected ? 'selected' : '');
        if (selected) li.querySelector('a').setAttribute('aria-current', 'true');
        else li.querySelector('a').removeAttribute('aria-current');
      },
    );
  }

  // ---- report -----------------------------------------------------------------------------------

  function srmSentence(srm) {
    if (!srm || !isNum(srm.p_value)) return 'sample ratio not tested';
    return srm.mismatch ? 'sample ratio MISMATCH' : 'sample ratio OK';
  }

  function liftClass(t) {
    if (!t || !t.significant || !isNum(t.relative_lift)) return 'sig-none';
    return t.relative_lift > 0 ? 'sig-up' : 'sig-down';
  }

  function ciText(t, digits = 1) {
    const ci = t && t.relative_ci;
    if (!ci || !isNum(ci[0]) || !isNum(ci[1])) return DASH;
    return `${fmtSignedPct(ci[0], digits).replace('+', '')} to ${fmtSignedPct(ci[1], digits).replace('+', '')}`;
  }

  // "treatment converts 12.1 % better per visitor (95 % CI 0.1 % to 24.1 %, p = 0.046)"
  function metricClause(variant, control, m, t, confidence) {
    if (!t || !isNum(t.relative_lift) || !isNum(t.p_value)) {
      return { text: `not enough data yet to compare ${variant} with ${control} (${m.label.toLowerCase()})`, cls: 'sig-none' };
    }
    const stats = `(${fmtConfidence(confidence)} CI ${ciText(t)}, p${NBSP}${fmtPRel(t.p_value)})`;
    if (t.significant) {
      const how = t.relative_lift > 0 ? 'better' : 'worse';
      return { text: `${variant} ${m.noun} ${fmtSignedPct(Math.abs(t.relative_lift)).replace('+', '')} ${how} ${m.unit} ${stats}`, cls: liftClass(t) };
    }
    return {
      text: `no significant difference ${m.unit === 'per visitor' && m.noun === 'converts' ? 'in conversion per visitor' : `in ${m.label.toLowerCase()}`} between ${variant} and ${control}: ${fmtSignedPct(t.relative_lift)} ${stats}`,
      cls: 'sig-none',
    };
  }

  function renderVerdicts(report) {
    const box = $('verdicts');
    const treatments = report.variants.filter((v) => v.variant !== report.control);
    box.hidden = treatments.length === 0;
    reconcile(
      $('verdict-list'),
      treatments.map((v) => v.variant),
      (name) => el('li', { 'data-testid': `verdict-${name}` },
        el('span', { class: 'verdict-main', 'data-field': 'main' }),
        el('span', { class: 'verdict-more muted', 'data-field': 'more' })),
      (li, name, i) => {
        const v = treatments[i];
        const cmp = v.vs_control || {};
        const primary = metricClause(name, report.control, TESTED[0], cmp[TESTED[0].key], report.confidence);
        const srm = srmSentence(report.srm);
        setText(li.querySelector('[data-field="main"]'), `${primary.text}; ${srm}.`);
        // The other tested metrics are mentioned only when they differ significantly.
        const more = TESTED.slice(1)
          .filter((m) => cmp[m.key] && cmp[m.key].significant)
          .map((m) => {
            const t = cmp[m.key];
            return `${m.label}: ${fmtSignedPct(t.relative_lift)} (${fmtConfidence(report.confidence)} CI ${ciText(t)}, p${NBSP}${fmtPRel(t.p_value)}).`;
          });
        setText(li.querySelector('[data-field="more"]'), more.join(' '));
        setClass(li, 'verdict', report.srm && report.srm.mismatch ? 'sig-untrusted' : primary.cls);
        setAttr(li, 'data-significant', Boolean(cmp[TESTED[0].key] && cmp[TESTED[0].key].significant));
      },
    );
  }

  const KPI_FIELDS = [
    { key: 'visitors', label: 'Visitors', fmt: fmtInt },
    { key: 'sessions', label: 'Sessions', fmt: fmtInt },
    { key: 'conversion_rate_visitor', label: 'Conversion / visitor', fmt: (v) => fmtPct(v, 2) },
    { key: 'conversion_rate_session', label: 'Conversion / session', fmt: (v) => fmtPct(v, 2) },
    { key: 'revenue_per_visitor', label: 'Revenue / visitor', fmt: fmtMoney },
    { key: 'bounce_rate', label: 'Bounce rate', fmt: (v) => fmtPct(v, 1) },
  ];

  function createKpiCard(name) {
    const stats = el('dl', { class: 'kpi-stats' },
      ...KPI_FIELDS.map((f) => el('div', { class: 'kpi-stat' },
        el('dt', { text: f.label }),
        el('dd', { 'data-testid': `kpi-${name}-${f.key}`, 'data-field': f.key }))));
    const totals = el('p', { class: 'kpi-totals muted' },
      el('span', { 'data-testid': `kpi-${name}-conversions`, 'data-field': 'conversions' }), ' conversions · revenue ',
      el('span', { 'data-testid': `kpi-${name}-revenue`, 'data-field': 'revenue' }), ' · ',
      el('span', { 'data-testid': `kpi-${name}-events`, 'data-field': 'events' }), ' events');
    const liftRows = TESTED.map((m) => el('tr', { 'data-metric': m.key },
      el('th', { scope: 'row', text: m.label }),
      el('td', { class: 'num' }, el('span', { class: 'lift', 'data-testid': `lift-${name}-${m.key}` })),
      el('td', { class: 'num ci' },
        el('span', { 'data-testid': `lift-${name}-${m.key}-ci-low` }), el('span', { 'data-field': 'to', text: ' to ' }),
        el('span', { 'data-testid': `lift-${name}-${m.key}-ci-high` })),
      el('td', { class: 'num' }, el('span', { 'data-testid': `pvalue-${name}-${m.key}` }))));
    const lifts = el('table', { class: 'lifts', 'data-field': 'lifts' },
      el('thead', {}, el('tr', {},
        el('th', { scope: 'col', text: 'vs control' }),
        el('th', { scope: 'col', class: 'num', text: 'Lift' }),
        el('th', { scope: 'col', class: 'num', 'data-field': 'ci-head', text: '95 % CI' }),
        el('th', { scope: 'col', class: 'num', text: 'p' }))),
      el('tbody', {}, ...liftRows));
    return el('article', { class: 'panel kpi', 'data-testid': `kpi-${name}` },
      el('header', { class: 'kpi-head' },
        el('span', { class: 'swatch', 'data-field': 'swatch' }),
        el('h3', { text: name }),
        el('span', { class: 'badge', 'data-field': 'role' })),
      stats, totals,
      el('p', { class: 'kpi-live muted', 'data-field': 'live', 'data-testid': `live-${name}` }),
      lifts);
  }

  // The speed layer's model read of this variant's sessions in progress (report.live).
  function updateLive(p, v, report) {
    const live = report.live && (report.live.variants || []).find((x) => x.variant === v.variant);
    p.hidden = !live;
    if (!live) return;
    const version = report.live.model_version === report.live.max_model_version
      ? `model v${report.live.model_version}` : `models v${report.live.model_version}–v${report.live.max_model_version}`;
    setAttr(p, 'data-raw', String(live.expected_conversions));
    setAttr(p, 'title', `Sum of the predicted conversion probabilities of the sessions that are still in progress and have not converted, as of ${report.live.as_of}`);
    setText(p, `Live (${version}): ${fmtInt(live.sessions_in_progress)} sessions in progress, ` +
      `${live.expected_conversions.toFixed(1)} conversions expected ` +
      `(${fmtPct(live.expected_rate_in_progress, 1)}) · ${fmtInt(live.observed_conversions)} observed so far`);
  }

  function updateKpiCard(card, v, report, color) {
    const q = (f) => card.querySelector(`[data-field="${f}"]`);
    const isControl = v.variant === report.control;
    q('swatch').style.background = color;
    setText(q('role'), isControl ? 'control' : 'treatment');
    setClass(q('role'), 'badge', isControl ? 'badge-control' : 'badge-treatment');
    for (const f of KPI_FIELDS) setNum(q(f.key), v[f.key], f.fmt(v[f.key]));
    setNum(q('conversions'), v.conversions, fmtInt(v.conversions));
    setNum(q('revenue'), v.revenue, fmtMoney(v.revenue));
    setNum(q('events'), v.events, fmtInt(v.events));
    updateLive(q('live'), v, report);

    const lifts = q('lifts');
    lifts.hidden = isControl || !v.vs_control;
    if (lifts.hidden) return;
    setText(q('ci-head'), `${fmtConfidence(report.confidence)} CI`);
    const name = v.variant;
    for (const m of TESTED) {
      const t = v.vs_control[m.key] || {};
      const row = lifts.querySelector(`tr[data-metric="${m.key}"]`);
      const get = (id) => row.querySelector(`[data-testid="${CSS.escape(id)}"]`);
      setClass(row, liftClass(t));
      setAttr(row, 'data-significant', Boolean(t.significant));
      setAttr(row, 'title', `${t.test || ''}: ${fmtPct(t.control, 3)} (control) vs ${fmtPct(t.treatment, 3)}; absolute lift ${fmtSignedPct(t.absolute_lift, 3)}; statistic ${isNum(t.statistic) ? t.statistic.toFixed(3) : DASH}${isNum(t.df) ? `, df ${t.df.toFixed(1)}` : ''}`);
      if (m.key === 'revenue_per_visitor') {
        setAttr(row, 'title', `${t.test || ''}: ${fmtMoney(t.control)} (control) vs ${fmtMoney(t.treatment)}; absolute lift ${isNum(t.absolute_lift) ? fmtMoney(t.absolute_lift) : DASH}; statistic ${isNum(t.statistic) ? t.statistic.toFixed(3) : DASH}${isNum(t.df) ? `, df ${t.df.toFixed(1)}` : ''}`);
      }
      const ci = Array.isArray(t.relative_ci) ? t.relative_ci : [null, null];
      setNum(get(`lift-${name}-${m.key}`), t.relative_lift, fmtSignedPct(t.relative_lift));
      setNum(get(`lift-${name}-${m.key}-ci-low`), ci[0], fmtSignedPct(ci[0]).replace('+', ''));
      setNum(get(`lift-${name}-${m.key}-ci-high`), ci[1], fmtSignedPct(ci[1]).replace('+', ''));
      setNum(get(`pvalue-${name}-${m.key}`), t.p_value, fmtP(t.p_value));
      const hasCi = isNum(ci[0]) && isNum(ci[1]);
      setText(row.querySelector('[data-field="to"]'), hasCi ? ' to ' : '');
      if (!hasCi) setText(get(`lift-${name}-${m.key}-ci-high`), '');
    }
  }

  const REPORT_PARTS = ['srm', 'kpis', 'charts'];

  // The report of `id` could not be loaded and another (or none) is shown: clear it rather than
  // show the figures of another experiment under this one's name.
  function renderReportUnavailable(id) {
    const section = $('report');
    if (section.dataset.experiment === id) return; // keep the last figures; the banner says why
    setText($('report-title'), id);
    $('report-meta').replaceChildren('The report could not be loaded: see the error above.');
    for (const p of [...REPORT_PARTS, 'verdicts', 'srm-warning', 'unit-note']) $(p).hidden = true;
  }

  function renderReport(report, colors) {
    const section = $('report');
    for (const p of REPORT_PARTS) $(p).hidden = false;
    setText($('report-title'), report.experiment);
    const total = report.variants.reduce((a, v) => a + (v.visitors || 0), 0);
    const meta = $('report-meta');
    meta.replaceChildren(
      `${report.variants.length} variants · ${fmtInt(total)} visitors · control `,
      el('strong', { text: report.control }),
      ' · ',
      el('span', { 'data-testid': 'contamination', 'data-raw': String(report.visitors_in_multiple_variants), text: fmtInt(report.visitors_in_multiple_variants) }),
      ` visitor${report.visitors_in_multiple_variants === 1 ? '' : 's'} seen in more than one variant`,
    );
    setClass(meta, 'muted', report.visitors_in_multiple_variants > 0 ? 'has-contamination' : '');

    const srm = report.srm || {};
    const srmEl = $('srm');
    srmEl.replaceChildren(
      el('span', { class: 'srm-label', text: srmSentence(srm).replace(/^sample ratio/, 'Sample ratio') }),
      el('span', { class: 'srm-p' }, `χ² p ${isNum(srm.p_value) && srm.p_value < 0.001 ? '' : `=${NBSP}`}`,
        el('span', { 'data-testid': 'srm-p_value', 'data-raw': String(srm.p_value ?? null), text: fmtP(srm.p_value) })),
    );
    setClass(srmEl, 'srm', srm.mismatch ? 'srm-bad' : isNum(srm.p_value) ? 'srm-ok' : 'srm-none');
    setAttr(srmEl, 'data-mismatch', Boolean(srm.mismatch));
    setAttr(srmEl, 'title', isNum(srm.p_value)
      ? `observed shares ${(srm.observed_share || []).map((s) => fmtPct(s, 2)).join(' / ')}, expected ${(srm.expected_share || []).map((s) => fmtPct(s, 1)).join(' / ')}; mismatch when p < ${srm.threshold}`
      : 'not enough data for the sample ratio test');

    const srmWarn = $('srm-warning');
    if (srm.mismatch) {
      // The server's sentence starts with "sample ratio mismatch: …"; its head is set in bold.
      const text = srm.warning || 'sample ratio mismatch: the split differs from the expected one beyond chance; the lifts are not trustworthy until its cause is found';
      const m = /^(sample ratio mismatch)(:?\s*)(.*)$/is.exec(text);
      srmWarn.replaceChildren(
        el('strong', { text: 'Sample ratio mismatch' }),
        m ? `: ${m[3]}` : `: ${text}`);
      srmWarn.hidden = false;
    } else {
      srmWarn.hidden = true;
    }

    const unitNote = $('unit-note');
    unitNote.hidden = report.unit !== 'visitor_hour';
    if (!unitNote.hidden) {
      setText(unitNote, 'Figures are summed over the selected hours: a visitor active in several hours counts once per hour, and the statistics treat visitor-hours as independent (an approximation).');
    }

    renderVerdicts(report);
    reconcile(
      $('kpis'),
      report.variants.map((v) => v.variant),
      createKpiCard,
      (card, name, i) => updateKpiCard(card, report.variants[i], report, colors.get(name)),
    );
    setAttr(section, 'data-as-of', report.as_of || '');
  }

  function ensureChartPanels() {
    const box = $('charts');
    if (box.children.length) return;
    for (const c of CHARTS) {
      const container = el('div', { class: 'chart', id: `chart-${c.metric}`, 'data-testid': `chart-${c.metric}` });
      box.append(el('div', { class: 'panel chart-panel' },
        el('h3', {}, c.title, el('span', { class: 'muted', text: ' per UTC hour' })), container));
      resizeObserver.observe(container);
    }
  }

  function renderTimeseries(chart, ts, colors) {
    const container = $(`chart-${chart.metric}`);
    if (!ts) return; // its error is in the banner; keep the last chart
    if (!ts.hours || ts.hours.length === 0) {
      dropChart(container, 'No hourly data yet.');
      return;
    }
    drawChart(container, {
      xs: ts.hours.map(hourSeconds),
      series: ts.series.map((s) => ({ label: s.variant, color: colors.get(s.variant) || CONTROL_COLOR, values: s.values })),
      fmt: chart.fmt,
      finalBefore: ts.final_before ? hourSeconds(ts.final_before) : null,
    });
  }

  function renderUniques(u1, u24, status) {
    const container = $('chart-uniques');
    if (!u1 || !u24) return;
    const hours = Array.from(new Set([...u1.hours, ...u24.hours])).sort();
    if (hours.length === 0) {
      dropChart(container, 'No visitors yet.');
      return;
    }
    const pick = (doc) => {
      const byHour = new Map();
      const values = doc.series.length ? doc.series[0].values : [];
      doc.hours.forEach((h, i) => byHour.set(h, values[i]));
      return hours.map((h) => (byHour.has(h) ? byHour.get(h) : null));
    };
    const fb = status && status.speed && status.speed.final_before;
    drawChart(container, {
      xs: hours.map(hourSeconds),
      series: [
        { label: 'in the hour', color: '#2563eb', values: pick(u1) },
        { label: 'in 24 h ending with it', color: '#059669', values: pick(u24) },
      ],
      fmt: 'int',
      finalBefore: fb ? hourSeconds(fb) : null,
    });
  }

  // ---- input / bad rows ---------------------------------------------------------------------------

  function renderInput(status) {
    const input = status.input || {};
    const set = (id, v) => setNum($(id), v, fmtInt(v));
    set('status-lines', input.lines);
    set('status-valid', input.valid_beacons);
    set('status-dups', input.duplicates);
    set('status-late', input.late_beacons);
    set('status-bad', input.bad_rows);
    setClass($('status-bad'), '', input.bad_rows > 0 ? 'bad' : '');

    const reasons = Object.entries(input.bad_rows_by_reason || {}).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
    const counts = new Map(reasons);
    $('badrows-empty').hidden = reasons.length > 0;
    $('badrows-body').closest('table').hidden = reasons.length === 0;
    const maxCount = reasons.length ? reasons[0][1] : 0;
    reconcile(
      $('badrows-body'),
      reasons.map((r) => r[0]),
      (reason) => el('tr', {},
        el('th', { scope: 'row' }, el('code', { text: reason })),
        el('td', { class: 'num' },
          el('span', { class: 'bar', 'data-field': 'bar' }),
          el('span', { 'data-testid': `badrows-${reason}`, 'data-field': 'count' })),
        el('td', { class: 'num muted', 'data-field': 'share' })),
      (tr, reason) => {
        const n = counts.get(reason);
        setNum(tr.querySelector('[data-field="count"]'), n, fmtInt(n));
        setText(tr.querySelector('[data-field="share"]'), input.lines > 0 ? fmtPct(n / input.lines, 2) : DASH);
        tr.querySelector('[data-field="bar"]').style.width = `${maxCount ? Math.max(2, (60 * n) / maxCount) : 0}px`;
      },
    );
  }

  // ---- refresh loop ---------------------------------------------------------------------------------

  async function refresh() {
    const gen = ++state.generation;
    clearTimeout(state.timer);
    const errors = [];
    const get = (path) => fetchJson(path).catch((e) => {
      errors.push(e);
      return null;
    });

    const experimentPart = (id) => Promise.all([
      get(`v1/experiments/${encodeURIComponent(id)}/report`),
      ...CHARTS.map((c) => get(`v1/experiments/${encodeURIComponent(id)}/timeseries?metric=${c.metric}`)),
    ]);

    let id = hashExperiment() || state.selected;
    const [common, detail] = await Promise.all([
      Promise.all([get('v1/status'), get('v1/experiments'), get('v1/uniques?window=1h'), get('v1/uniques?window=24h')]),
      id ? experimentPart(id) : Promise.resolve(null),
    ]);
    const [status, exps, u1, u24] = common;
    let parts = detail;
    if (!id && exps && exps.experiments && exps.experiments.length) {
      // No selection yet: the first experiment, recorded in the URL.
      id = exps.experiments[0].id;
      history.replaceState(null, '', experimentHash(id));
      parts = await experimentPart(id);
    }
    if (gen !== state.generation) return; // a newer refresh (e.g. a click) superseded this one
    state.selected = id;

    try {
      if (status) {
        renderStatus(status);
        renderInput(status);
      }
      if (exps) renderExperiments(exps);
      renderUniques(u1, u24, status);
      const section = $('report');
      if (id && parts) {
        const [report, ...series] = parts;
        if (report) {
          const colors = variantColors(report.variants.map((v) => v.variant), report.control);
          section.hidden = false;
          renderReport(report, colors);
          ensureChartPanels();
          CHARTS.forEach((c, i) => renderTimeseries(c, series[i], colors));
          setAttr(section, 'data-experiment', id);
        } else {
          renderReportUnavailable(id);
        }
      } else if (!id) {
        setText($('report-title'), 'No experiment selected');
      }
      setAttr(document.body, 'data-refreshes', state.generation);
    } catch (e) {
      // A rendering bug must be as visible as an API error.
      console.error(e);
      errors.push(e);
    }

    renderErrors(errors);
    renderUpdated(errors.length === 0);
    if (errors.length === 0 && !state.loaded) {
      state.loaded = true;
      document.body.setAttribute('data-loaded', 'true');
    }
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  function start() {
    resizeObserver.observe($('chart-uniques'));
    window.addEventListener('hashchange', () => {
      const id = hashExperiment();
      if (id && id !== state.selected) {
        state.selected = id;
        // Show the selection at once; the figures follow with the refresh.
        for (const li of $('experiment-list').children) setClass(li, 'exp', li.dataset.key === id ? 'selected' : '');
        setAttr($('report'), 'data-experiment', '');
        refresh();
      }
    });
    document.addEventListener('visibilitychange', () => {
      if (!document.hidden) refresh();
    });
    refresh();
  }

  if (typeof uPlot === 'undefined') {
    document.addEventListener('DOMContentLoaded', () => {
      renderErrors([new Error('assets/uplot.js did not load: the charts cannot be drawn')]);
    });
  } else {
    start();
  }
})();
