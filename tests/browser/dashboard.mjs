#!/usr/bin/env node
// Browser test of the dashboard of a running `duet serve`.
//
//   node tests/browser/dashboard.mjs BASE_URL SCREENSHOT_DIR
//
// Loads BASE_URL/ in headless Chromium (/usr/bin/chromium, or $DUET_CHROMIUM), waits for
// <body data-loaded="true">, selects every experiment of the list in turn and checks that each
// displayed number (its data-raw attribute) equals the value the API gives this script, that the
// verdicts, the SRM status and the charts are shown, and that the bad-row counts equal those of
// /v1/status. Fails on any console error, page error, failed request or HTTP error of the page.
// Takes full-page screenshots at 1280x900 (dashboard-desktop.png) and 390x844
// (dashboard-phone.png) into SCREENSHOT_DIR.
//
// Exit 0 with a one-line summary when all matched; else every problem on its own line and exit 1.
// playwright-core comes from web/node_modules (scripts/web-deps.sh installs it).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const WAIT_MS = 30_000;
const FETCH_TIMEOUT_MS = 10_000;
// The dashboard refreshes every 5 s and a live server's views change: a mismatch is only
// reported when it persists over this many reads spaced RETRY_PAUSE_MS apart.
const ATTEMPTS = 4;
const RETRY_PAUSE_MS = 2_000;
const CHART_METRICS = ['visitors', 'conversions', 'conversion_rate_session', 'revenue_per_visitor'];
const KPI_FIELDS = ['visitors', 'sessions', 'conversion_rate_visitor', 'conversion_rate_session',
  'revenue_per_visitor', 'bounce_rate', 'conversions', 'revenue', 'events'];
const TESTED = ['conversion_rate_visitor', 'conversion_rate_session', 'revenue_per_visitor'];
const INPUT_FIELDS = ['lines', 'valid_beacons', 'duplicates', 'late_beacons', 'bad_rows'];
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..', '..');

function usage(msg) {
  console.error(`dashboard: ${msg}\nusage: node tests/browser/dashboard.mjs BASE_URL SCREENSHOT_DIR`);
  process.exit(2);
}

const [baseArg, shotDir] = process.argv.slice(2);
if (!baseArg || !shotDir) usage('two arguments expected');
const base = baseArg.endsWith('/') ? baseArg : `${baseArg}/`;

let chromium;
try {
  ({ chromium } = createRequire(path.join(repo, 'web', 'package.json'))('playwright-core'));
} catch (e) {
  console.error(`dashboard: playwright-core not found in web/node_modules (${e.code || e.message}): run scripts/web-deps.sh`);
  process.exit(1);
}
const executablePath = process.env.DUET_CHROMIUM || '/usr/bin/chromium';
if (!fs.existsSync(executablePath)) {
  console.error(`dashboard: ${executablePath} not found: install Debian's chromium (apt-get install chromium)`);
  process.exit(1);
}

const problems = []; // failures of the page itself: console errors, failed requests
// While the script itself reloads the page, the page's requests in flight are cancelled
// (net::ERR_ABORTED): expected then, a failure otherwise.
let expectAborts = false;
const raw = (v) => (v === null || v === undefined ? 'null' : String(v));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function api(p) {
  const res = await fetch(new URL(p, base), { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { Accept: 'application/json' } });
  const text = await res.text();
  if (!res.ok) throw new Error(`GET /${p}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

// Every element with a data-testid: its data-raw, text and the attributes the checks read.
function snapshot(page) {
  return page.evaluate(() => {
    const out = {};
    for (const e of document.querySelectorAll('[data-testid]')) {
      out[e.getAttribute('data-testid')] = {
        raw: e.getAttribute('data-raw'),
        text: e.textContent.trim(),
        visible: e.getClientRects().length > 0 && !e.closest('[hidden]'),
        mismatch: e.getAttribute('data-mismatch'),
      };
    }
    return out;
  });
}

// Compares the expected {testid: value} with the page; returns the mismatches.
function compare(snap, expected) {
  const bad = [];
  for (const [id, value] of Object.entries(expected)) {
    const got = snap[id];
    if (!got) bad.push(`${id}: missing on the page`);
    else if (got.raw !== raw(value)) bad.push(`${id}: page data-raw=${got.raw}, API ${raw(value)}`);
    else if (!got.visible) bad.push(`${id}: not visible`);
  }
  return bad;
}

// Reads the API with `expect` and the page with `check` until they agree (or ATTEMPTS ran out).
async function agree(page, expect, check) {
  let bad = [];
  for (let i = 0; i < ATTEMPTS; i++) {
    if (i > 0) await sleep(RETRY_PAUSE_MS);
    const expected = await expect();
    const snap = await snapshot(page);
    bad = check(snap, expected);
    if (bad.length === 0) return { count: Object.keys(expected.numbers).length, bad };
  }
  return { count: 0, bad };
}

function expectReport(exp, report) {
  const numbers = {};
  numbers[`experiment-${exp.id}-visitors`] = exp.visitors;
  numbers.contamination = report.visitors_in_multiple_variants;
  numbers['srm-p_value'] = report.srm ? report.srm.p_value : null;
  for (const v of report.variants) {
    for (const f of KPI_FIELDS) numbers[`kpi-${v.variant}-${f}`] = v[f];
    if (v.variant === report.control || !v.vs_control) continue;
    for (const m of TESTED) {
      const t = v.vs_control[m] || {};
      numbers[`lift-${v.variant}-${m}`] = t.relative_lift;
      numbers[`lift-${v.variant}-${m}-ci-low`] = t.relative_ci ? t.relative_ci[0] : null;
      numbers[`lift-${v.variant}-${m}-ci-high`] = t.relative_ci ? t.relative_ci[1] : null;
      numbers[`pvalue-${v.variant}-${m}`] = t.p_value;
    }
  }
  // Live scoring (only when a model scored): the expected conversions of each variant.
  for (const v of (report.live && report.live.variants) || []) {
    numbers[`live-${v.variant}`] = v.expected_conversions;
  }
  return { numbers, report };
}

function checkReport(snap, { numbers, report }) {
  const bad = compare(snap, numbers);
  const srm = snap['srm-status'];
  if (!srm || !srm.visible || !/sample ratio/i.test(srm.text)) bad.push(`srm-status: not shown (${srm ? JSON.stringify(srm.text) : 'missing'})`);
  else if (srm.mismatch !== String(Boolean(report.srm && report.srm.mismatch))) bad.push(`srm-status: data-mismatch=${srm.mismatch}, API mismatch=${report.srm && report.srm.mismatch}`);
  const warn = snap['srm-warning'];
  if (report.srm && report.srm.mismatch && !(warn && warn.visible)) bad.push('srm-warning: not shown although srm.mismatch is true');
  if (!(report.srm && report.srm.mismatch) && warn && warn.visible) bad.push('srm-warning: shown although srm.mismatch is false');
  for (const v of report.variants) {
    if (v.variant === report.control) continue;
    const verdict = snap[`verdict-${v.variant}`];
    if (!verdict || !verdict.visible || verdict.text.length < 20) bad.push(`verdict-${v.variant}: not shown`);
    else if (!/sample ratio/.test(verdict.text)) bad.push(`verdict-${v.variant}: does not state the sample ratio: ${verdict.text}`);
  }
  return bad;
}

function expectStatus(status) {
  const numbers = {};
  for (const f of INPUT_FIELDS) numbers[`status-${f}`] = status.input[f];
  for (const [reason, n] of Object.entries(status.input.bad_rows_by_reason || {})) numbers[`badrows-${reason}`] = n;
  return { numbers, status };
}

function checkStatus(snap, { numbers }) {
  const bad = compare(snap, numbers);
  for (const id of Object.keys(snap)) {
    if (id.startsWith('badrows-') && !(id in numbers) && snap[id].raw !== null) bad.push(`${id}: on the page but not in /v1/status`);
  }
  return bad;
}

// Chart canvases that rendered with a non-zero size, by chart container.
function chartSizes(page) {
  return page.evaluate(() => Array.from(document.querySelectorAll('.chart')).map((c) => {
    const canvas = c.querySelector('canvas');
    const r = canvas ? canvas.getBoundingClientRect() : null;
    return { id: c.dataset.testid, width: r ? r.width : 0, height: r ? r.height : 0, right: r ? r.right : 0 };
  }));
}

async function waitSelected(page, id) {
  await page.waitForFunction((want) => {
    const r = document.getElementById('report');
    return r && r.dataset.experiment === want;
  }, id, { timeout: WAIT_MS });
}

// Each distinct failure once, with how often it occurred (the page retries every 5 s).
function printFailures(list) {
  const counts = new Map();
  for (const f of list) counts.set(f, (counts.get(f) || 0) + 1);
  for (const [f, n] of counts) console.error(`dashboard: FAIL ${f}${n > 1 ? ` (${n} times)` : ''}`);
}

async function main() {
  fs.mkdirSync(shotDir, { recursive: true });
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: WAIT_MS });
  const failures = [];
  let checked = 0;
  let experiments = [];
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(`console error: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('requestfailed', (r) => {
      const why = r.failure() ? r.failure().errorText : '';
      if (expectAborts && why === 'net::ERR_ABORTED') return;
      problems.push(`request failed: ${r.method()} ${r.url()}: ${why}`);
    });
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push(`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`);
    });

    await page.goto(base, { waitUntil: 'load', timeout: WAIT_MS });
    try {
      await page.waitForSelector('body[data-loaded="true"]', { timeout: WAIT_MS, state: 'attached' });
    } catch (e) {
      const banner = await page.getByTestId('error-banner').innerText({ timeout: 1000 }).catch(() => '');
      throw new Error(`the page did not finish loading within ${WAIT_MS / 1000} s${banner ? `; its error banner: ${banner.trim().replace(/\s*\n\s*/g, ' | ')}` : ''}`);
    }

    experiments = (await api('v1/experiments')).experiments;

    // The 5 s refresh updates the page in place: the elements and chart canvases stay.
    const tagged = await page.evaluate(() => {
      const els = [document.querySelector('[data-testid^="kpi-"][data-raw]'), document.querySelector('.chart canvas')].filter(Boolean);
      els.forEach((e) => { e.duetTag = true; });
      return { count: els.length, refreshes: Number(document.body.dataset.refreshes) };
    });
    try {
      await page.waitForFunction((n) => Number(document.body.dataset.refreshes) > n, tagged.refreshes, { timeout: WAIT_MS });
      const kept = await page.evaluate(() => [document.querySelector('[data-testid^="kpi-"][data-raw]'), document.querySelector('.chart canvas')]
        .filter(Boolean).filter((e) => e.duetTag).length);
      if (kept !== tagged.count) failures.push(`auto-refresh replaced ${tagged.count - kept} of ${tagged.count} elements instead of updating them in place`);
    } catch (e) {
      failures.push(`the page did not refresh itself within ${WAIT_MS / 1000} s`);
    }
    for (const exp of experiments) {
      const item = page.getByTestId(`experiment-${exp.id}`);
      if ((await item.count()) !== 1) {
        failures.push(`experiment-${exp.id}: not in the list`);
        continue;
      }
      await item.click();
      await waitSelected(page, exp.id);
      const hash = await page.evaluate(() => location.hash);
      if (hash !== `#experiment=${encodeURIComponent(exp.id)}`) failures.push(`experiment ${exp.id}: URL hash is ${hash}`);

      const r = await agree(page,
        async () => {
          const [list, report] = await Promise.all([api('v1/experiments'),
            api(`v1/experiments/${encodeURIComponent(exp.id)}/report`)]);
          return expectReport(list.experiments.find((e) => e.id === exp.id) || exp, report);
        },
        checkReport);
      checked += r.count;
      failures.push(...r.bad.map((b) => `experiment ${exp.id}: ${b}`));

      const sizes = await chartSizes(page);
      for (const m of CHART_METRICS) {
        const s = sizes.find((c) => c.id === `chart-${m}`);
        if (!s || !(s.width > 0 && s.height > 0)) failures.push(`experiment ${exp.id}: chart ${m} has no canvas of non-zero size`);
      }
    }

    const st = await agree(page, async () => expectStatus(await api('v1/status')), checkStatus);
    checked += st.count;
    failures.push(...st.bad);
    const uniqueHours = (await api('v1/uniques?window=24h')).hours.length;
    const uniques = (await chartSizes(page)).find((c) => c.id === 'chart-uniques');
    if (uniqueHours > 0 && !(uniques && uniques.width > 0 && uniques.height > 0)) failures.push('chart-uniques: no canvas of non-zero size');

    // The selection survives a reload through the URL hash.
    if (experiments.length > 1) {
      const last = experiments[experiments.length - 1].id;
      expectAborts = true;
      await page.goto(`${base}#experiment=${encodeURIComponent(last)}`, { waitUntil: 'load' });
      await page.reload({ waitUntil: 'load' });
      expectAborts = false;
      await page.waitForSelector('body[data-loaded="true"]', { timeout: WAIT_MS, state: 'attached' });
      await waitSelected(page, last).catch(() => failures.push(`#experiment=${last} after a reload did not select it`));
    }

    const banner = page.getByTestId('error-banner');
    if (await banner.isVisible()) failures.push(`error banner shown: ${(await banner.innerText()).trim().replace(/\s*\n\s*/g, ' | ')}`);

    // The screenshots show the first experiment of the list.
    if (experiments.length > 0) {
      await page.getByTestId(`experiment-${experiments[0].id}`).click();
      await waitSelected(page, experiments[0].id);
    }
    const desktop = path.join(shotDir, 'dashboard-desktop.png');
    await page.screenshot({ path: desktop, fullPage: true, timeout: WAIT_MS });

    // Phone: the same page resized, so the charts must follow their container (uPlot setSize).
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.waitForFunction(() => {
        const canvases = Array.from(document.querySelectorAll('.chart canvas'));
        return canvases.every((c) => c.getBoundingClientRect().right <= 390);
      }, null, { timeout: WAIT_MS });
    } catch (e) {
      failures.push(`phone: charts wider than the 390 px viewport: ${JSON.stringify(await chartSizes(page))}`);
    }
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
    if (overflow > 390) failures.push(`phone: the page scrolls sideways (${overflow} px wide at 390 px)`);
    const phone = path.join(shotDir, 'dashboard-phone.png');
    await page.screenshot({ path: phone, fullPage: true, timeout: WAIT_MS });
    expectAborts = true; // closing cancels the page's requests in flight
    await context.close();
  } finally {
    await browser.close();
  }

  failures.push(...problems);
  if (failures.length) {
    printFailures(failures);
    console.error(`dashboard: ${failures.length} problem(s); ${checked} numbers matched the API`);
    return 1;
  }
  console.log(`dashboard: ${experiments.length} experiments, ${checked} numbers checked against the API, screenshots in ${shotDir}`);
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  printFailures([e && e.message ? e.message : String(e), ...problems]);
  process.exit(1);
});
