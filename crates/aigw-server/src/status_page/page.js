// aigw's status page. Polls this listener's /status/targets every second (and
// /status/overview, which older gateways lack), keeps five minutes of history per target
// in this tab for the charts, and builds every element with textContent: route names,
// labels and error messages come from configuration and upstreams, never trusted as HTML.
'use strict';

const POLL_MS = 1000;
const HISTORY_MS = 5 * 60 * 1000;
// A fresh tab's charts span at least a minute, so the first seconds are not a sliver.
const MIN_CHART_MS = 60 * 1000;
// The window the "share" column measures, short enough to show a balancer's move at once.
const SHARE_WINDOW_MS = 10 * 1000;
const STALE_MS = 3000;
const OVERVIEW_RETRY_MS = 15 * 1000;
const MAX_ERRORS_SHOWN = 50;

const history = new Map(); // target key -> [{t, requests, failures, e2e, healthy}]
const transitions = new Map(); // target key -> {health, since (client ms, null if from load)}
const rows = new Map(); // target key -> row parts
const routeCards = new Map(); // route name -> card parts
let structure = '';
let lastOk = 0;
let lastError = '';
let overviewMissingSince = 0;
let startedAtMs = null;
let polls = 0;

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function num(v) {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function fmtInt(v) {
  v = num(v);
  return v === null ? '—' : Math.round(v).toLocaleString('en-US');
}

function fmtMs(v) {
  v = num(v);
  if (v === null) return '—';
  if (v < 10) return v.toFixed(2) + ' ms';
  if (v < 1000) return Math.round(v) + ' ms';
  return (v / 1000).toFixed(2) + ' s';
}

function fmtRate(v) {
  return v === null ? '—' : (v < 10 ? v.toFixed(1) : Math.round(v).toString()) + '/s';
}

function fmtCost(v) {
  v = num(v);
  if (v === null) return '—';
  return v === 0 ? '0' : v < 0.01 ? v.toPrecision(2) : v.toFixed(4);
}

function fmtClock(ms) {
  const d = new Date(ms);
  const p = (n) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fmtAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return s + ' s';
  if (s < 5400) return Math.round(s / 60) + ' min';
  if (s < 172800) return (s / 3600).toFixed(1) + ' h';
  return Math.round(s / 86400) + ' d';
}

// A figure given either as a number or as an object of them (e.g. a moving average and
// percentiles): the first number found.
function firstNumber(v) {
  if (num(v) !== null) return v;
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) if (num(x) !== null) return x;
  }
  return null;
}

function compact(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return v.map(compact).join(', ');
  if (typeof v.name === 'string' && Object.keys(v).length === 1) return v.name;
  return JSON.stringify(v);
}

function targetKey(route, t) {
  return `${route.name}\u0000${t.index}\u0000${t.target}`;
}

// Requests per second and the mean latency over the samples newer than `since`.
function rateSince(samples, since) {
  let first = null;
  let last = null;
  for (const s of samples) {
    if (s.t < since) continue;
    if (first === null) first = s;
    last = s;
  }
  if (first === null || last === first) return null;
  const dt = (last.t - first.t) / 1000;
  return Math.max(0, last.requests - first.requests) / dt;
}

function record(key, t, now) {
  let samples = history.get(key);
  if (!samples) {
    samples = [];
    history.set(key, samples);
  }
  samples.push({
    t: now,
    requests: num(t.requests) ?? 0,
    failures: num(t.failures) ?? 0,
    e2e: num(t.latency_ms && t.latency_ms.e2e),
    healthy: t.health !== 'unhealthy',
  });
  while (samples.length && samples[0].t < now - HISTORY_MS) samples.shift();

  const prev = transitions.get(key);
  if (!prev) {
    transitions.set(key, { health: t.health, since: null });
  } else if (prev.health !== t.health) {
    transitions.set(key, { health: t.health, since: now });
  }
}

function drawChart(canvas, samples, now) {
  const w = 200;
  const h = 52;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== w * ratio) {
    canvas.width = w * ratio;
    canvas.height = h * ratio;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const span = samples.length ? Math.min(HISTORY_MS, Math.max(MIN_CHART_MS, now - samples[0].t)) : MIN_CHART_MS;
  const x = (t) => w - ((now - t) / span) * w;
  const points = [];
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    const dt = (b.t - a.t) / 1000;
    if (dt <= 0) continue;
    points.push({ t: b.t, prevT: a.t, rate: Math.max(0, b.requests - a.requests) / dt, e2e: b.e2e, healthy: b.healthy });
  }
  // Out of service: shaded, so "since when" reads off the chart.
  ctx.fillStyle = 'rgba(192, 38, 45, 0.15)';
  for (const p of points) {
    if (!p.healthy) ctx.fillRect(x(p.prevT), 0, Math.max(1, x(p.t) - x(p.prevT)), h);
  }
  ctx.strokeStyle = '#dde1e8';
  ctx.beginPath();
  ctx.moveTo(0, h - 0.5);
  ctx.lineTo(w, h - 0.5);
  ctx.stroke();
  const maxRate = Math.max(1, ...points.map((p) => p.rate));
  ctx.fillStyle = 'rgba(47, 111, 219, 0.35)';
  ctx.strokeStyle = '#2f6fdb';
  for (const p of points) {
    const bh = (p.rate / maxRate) * (h - 4);
    ctx.fillRect(x(p.prevT), h - bh, Math.max(1, x(p.t) - x(p.prevT)), bh);
  }
  const lat = points.filter((p) => p.e2e !== null);
  const maxLat = Math.max(1, ...lat.map((p) => p.e2e));
  ctx.strokeStyle = '#d9822b';
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  lat.forEach((p, i) => {
    const y = h - 2 - (p.e2e / maxLat) * (h - 6);
    if (i === 0) ctx.moveTo(x(p.t), y);
    else ctx.lineTo(x(p.t), y);
  });
  ctx.stroke();
  return {
    span,
    maxRate: points.length ? Math.max(...points.map((p) => p.rate)) : null,
    maxLat: lat.length ? maxLat : null,
  };
}

function buildStructure(routes) {
  const container = $('routes');
  container.replaceChildren();
  rows.clear();
  routeCards.clear();
  for (const route of routes) {
    const card = el('article', 'route');
    card.dataset.route = route.name;
    const head = el('div', 'head');
    const title = el('h2', null, route.name);
    const paths = el('span', 'dim', (route.paths || []).join(' '));
    const algorithm = el('span', 'pill');
    const failovers = el('span');
    const rate = el('span');
    const healthy = el('span');
    head.append(title, paths, algorithm, failovers, rate, healthy);
    const table = el('table');
    const thead = el('thead');
    const hr = el('tr');
    for (const [name, hint] of [
      ['target', 'provider/model and Kong weight'],
      ['health', 'in or out of rotation (passive health check)'],
      ['share', "this target's part of the route's requests over the last 10 s"],
      ['in flight', 'attempts running now'],
      ['requests', 'attempts since start'],
      ['failures', 'failed attempts since start, by kind'],
      ['latency', 'moving average, whole answer; below: per output token'],
      ['TTFT', 'moving average time to first token (streams)'],
      ['tokens', 'prompt (in) / completion (out) since start'],
      ['cost', 'from input_cost/output_cost per million tokens'],
      ['last 5 min', 'bars: requests/s; line: latency; red: out of rotation'],
    ]) {
      const th = el('th', ['target', 'health', 'last 5 min'].includes(name) ? 'text' : null, name);
      th.title = hint;
      hr.append(th);
    }
    thead.append(hr);
    const tbody = el('tbody');
    table.append(thead, tbody);
    card.append(head, table);
    container.append(card);
    routeCards.set(route.name, { algorithm, failovers, rate, healthy });
    for (const t of route.targets || []) {
      const row = el('tr');
      row.dataset.target = t.target;
      const cells = {};
      for (const name of ['target', 'health', 'share', 'inFlight', 'requests', 'failures', 'latency', 'ttft', 'tokens', 'cost', 'chart']) {
        cells[name] = el('td', ['target', 'health', 'chart'].includes(name) ? 'text' : null);
        row.append(cells[name]);
      }
      const canvas = el('canvas', 'chart');
      canvas.setAttribute('role', 'img');
      const legend = el('div', 'legend');
      cells.chart.append(canvas, legend);
      tbody.append(row);
      rows.set(targetKey(route, t), { row, cells, canvas, legend });
    }
  }
}

function setCell(cell, main, sub, className) {
  cell.replaceChildren();
  const m = el('span', className, main);
  cell.append(m);
  if (sub) cell.append(el('span', 'sub', sub));
}

function renderTargets(doc, now) {
  const routes = Array.isArray(doc.routes) ? doc.routes : [];
  const shape = JSON.stringify(routes.map((r) => [r.name, (r.targets || []).map((t) => [t.index, t.target])]));
  if (shape !== structure) {
    buildStructure(routes);
    structure = shape;
  }
  let total = 0;
  const out = [];
  for (const route of routes) {
    const targets = route.targets || [];
    for (const t of targets) record(targetKey(route, t), t, now);
    const rates = targets.map((t) => rateSince(history.get(targetKey(route, t)) || [], now - SHARE_WINDOW_MS));
    const routeRate = rates.reduce((a, r) => a + (r || 0), 0);
    const card = routeCards.get(route.name);
    if (card) {
      card.algorithm.textContent = route.algorithm ? String(route.algorithm) : '';
      card.algorithm.hidden = !route.algorithm;
      card.failovers.textContent = route.failovers === undefined ? '' : `failovers: ${fmtInt(route.failovers)}`;
      card.failovers.className = num(route.failovers) > 0 ? 'nonzero' : '';
      card.rate.textContent = `${fmtRate(routeRate)} requests`;
      const up = targets.filter((t) => t.health !== 'unhealthy').length;
      card.healthy.textContent = `${up} of ${targets.length} targets in rotation`;
      card.healthy.className = up < targets.length ? 'nonzero' : 'dim';
    }
    targets.forEach((t, i) => {
      total += 1;
      const key = targetKey(route, t);
      const parts = rows.get(key);
      if (!parts) return;
      const { row, cells, canvas, legend } = parts;
      const unhealthy = t.health === 'unhealthy';
      if (unhealthy) out.push({ route: route.name, target: t.target, back: t.back_in_ms });
      row.dataset.health = t.health;
      row.dataset.requests = String(num(t.requests) ?? 0);
      row.className = unhealthy ? 'unhealthy' : '';
      setCell(cells.target, t.target, `weight ${fmtInt(t.weight)} · #${t.index}`, 'target-name');

      const since = transitions.get(key);
      let healthText = 'healthy';
      let healthClass = 'health healthy';
      let healthSub = '';
      if (unhealthy) {
        healthText = num(t.back_in_ms) !== null ? `OUT · back in ${fmtMs(t.back_in_ms)}` : 'OUT';
        healthClass = 'health unhealthy';
        healthSub = since && since.since ? `out since ${fmtClock(since.since)}` : 'out when this page opened';
      } else if (num(t.fails) > 0) {
        healthText = `healthy · ${t.fails} fail${t.fails === 1 ? '' : 's'}`;
        healthClass = 'health warn';
      }
      if (!unhealthy && since && since.since && now - since.since < HISTORY_MS) {
        healthSub = `back since ${fmtClock(since.since)}`;
      }
      setCell(cells.health, healthText, healthSub, healthClass);

      const rate = rates[i];
      const share = routeRate > 0 && rate !== null ? `${Math.round((rate / routeRate) * 100)}%` : '—';
      setCell(cells.share, share, fmtRate(rate));
      setCell(cells.inFlight, fmtInt(t.in_flight));
      setCell(cells.requests, fmtInt(t.requests));
      const kinds = t.failures_by_kind && typeof t.failures_by_kind === 'object'
        ? Object.entries(t.failures_by_kind).filter(([, n]) => num(n) > 0).map(([k, n]) => `${k}: ${fmtInt(n)}`).join('\n')
        : '';
      setCell(cells.failures, fmtInt(t.failures), kinds, num(t.failures) > 0 ? 'nonzero' : null);
      const lat = t.latency_ms || {};
      setCell(cells.latency, fmtMs(lat.e2e), `${fmtMs(lat.tpot)} / token`);
      setCell(cells.ttft, fmtMs(firstNumber(t.ttft_ms)));
      const tok = t.tokens || {};
      setCell(cells.tokens, `${fmtInt(tok.prompt)} in`, `${fmtInt(tok.completion)} out`);
      setCell(cells.cost, fmtCost(t.cost));

      const drawn = drawChart(canvas, history.get(key) || [], now);
      canvas.setAttribute('aria-label', `requests per second and latency of ${t.target} over the last 5 minutes`);
      legend.replaceChildren(
        el('span', 'dim', `${fmtAgo(drawn.span)}: `),
        el('span', 'req', `■ ${fmtRate(rate)}`),
        document.createTextNode(drawn.maxRate !== null ? ` (max ${fmtRate(drawn.maxRate)}) ` : ' '),
        el('span', 'lat', `— ${fmtMs(lat.e2e)}`),
        document.createTextNode(drawn.maxLat !== null ? ` (max ${fmtMs(drawn.maxLat)})` : ''),
      );
    });
  }
  const summary = $('summary');
  if (total === 0) {
    summary.className = 'summary';
    summary.textContent = 'No routes loaded.';
  } else if (out.length === 0) {
    summary.className = 'summary ok';
    summary.textContent = `All ${total} targets in rotation.`;
  } else {
    summary.className = 'summary bad';
    summary.textContent = `${out.length} of ${total} targets out of rotation: ` +
      out.map((o) => `${o.route} → ${o.target}${num(o.back) !== null ? ` (back in ${fmtMs(o.back)})` : ''}`).join('; ');
  }
}

function renderOverview(doc) {
  if (typeof doc.version === 'string') $('version').textContent = `v${doc.version.replace(/^v/, '')}`;
  startedAtMs = num(doc.started_at_ms);

  const errors = Array.isArray(doc.recent_errors) ? doc.recent_errors.slice() : [];
  errors.sort((a, b) => (num(b.at_ms) ?? 0) - (num(a.at_ms) ?? 0));
  const tbody = $('errors').tBodies[0];
  tbody.replaceChildren();
  for (const e of errors.slice(0, MAX_ERRORS_SHOWN)) {
    const tr = el('tr');
    const at = num(e.at_ms);
    for (const [value, className] of [
      [at === null ? '—' : fmtClock(at), null],
      [e.route, null],
      [e.target, null],
      [e.status, num(e.status) >= 500 || num(e.status) === 429 ? 'nonzero' : null],
      [e.code, null],
      [e.message, 'message'],
    ]) {
      const td = el('td', className, value ?? '—');
      tr.append(td);
    }
    tbody.append(tr);
  }
  $('errors').hidden = errors.length === 0;
  $('errors-note').textContent = errors.length === 0 ? 'None since start.' : `${errors.length} most recent, newest first.`;

  const config = $('config');
  config.replaceChildren();
  const routes = doc.config && Array.isArray(doc.config.routes) ? doc.config.routes : [];
  for (const r of routes) {
    const box = el('div', 'config-route');
    box.append(el('h3', null, r.name));
    const dl = el('p');
    dl.append(
      el('span', 'dim', 'paths '), el('code', null, compact(r.paths)),
      el('span', 'dim', ' · algorithm '), el('code', null, compact(r.algorithm)),
      el('span', 'dim', ' · plugins '), el('code', null, Array.isArray(r.plugins) && r.plugins.length ? compact(r.plugins) : 'none'),
    );
    box.append(dl);
    const table = el('table');
    const head = el('tr');
    for (const h of ['target', 'weight', 'credentials from']) head.append(el('th', 'text', h));
    table.append(head);
    for (const t of Array.isArray(r.targets) ? r.targets : []) {
      const tr = el('tr');
      tr.append(el('td', 'text', compact(t.label)), el('td', 'text', compact(t.weight)), el('td', 'text', compact(t.credentials)));
      table.append(tr);
    }
    box.append(table);
    config.append(box);
  }
  if (routes.length === 0) config.append(el('p', 'dim', 'No configuration in /status/overview.'));
}

function overviewMissing() {
  $('errors').hidden = true;
  $('errors-note').textContent = 'This gateway does not serve /status/overview: no error log or configuration to show.';
  const config = $('config');
  config.replaceChildren(el('p', 'dim', 'This gateway does not serve /status/overview.'));
}

async function fetchJson(path) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 2 * POLL_MS);
  try {
    const response = await fetch(path, { cache: 'no-store', signal: controller.signal, headers: { accept: 'application/json' } });
    if (!response.ok) return { status: response.status };
    return { status: response.status, body: await response.json() };
  } finally {
    clearTimeout(timer);
  }
}

async function pollOverview(now) {
  if (overviewMissingSince && now - overviewMissingSince < OVERVIEW_RETRY_MS) return;
  try {
    const answer = await fetchJson('/status/overview');
    if (answer.body) {
      overviewMissingSince = 0;
      renderOverview(answer.body);
    } else if (answer.status === 404) {
      overviewMissingSince = now;
      overviewMissing();
    }
  } catch (_) {
    // The targets poll reports the listener being unreachable.
  }
}

async function poll() {
  const started = Date.now();
  try {
    const answer = await fetchJson('/status/targets');
    if (answer.body) {
      lastOk = Date.now();
      lastError = '';
      polls += 1;
      renderTargets(answer.body, lastOk);
      document.body.dataset.polls = String(polls);
    } else {
      lastError = `HTTP ${answer.status}`;
    }
  } catch (e) {
    lastError = e && e.name === 'AbortError' ? 'timed out' : 'unreachable';
  }
  await pollOverview(started);
  setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
}

function tick() {
  const live = $('live');
  const now = Date.now();
  if (lastOk && now - lastOk < STALE_MS) {
    live.className = 'live';
    live.textContent = `live · ${fmtClock(lastOk)}`;
  } else {
    live.className = 'live stale';
    live.textContent = lastOk
      ? `STALE · no update for ${fmtAgo(now - lastOk)}${lastError ? ` (${lastError})` : ''}`
      : `connecting…${lastError ? ` (${lastError})` : ''}`;
  }
  $('uptime').textContent = startedAtMs !== null ? `up ${fmtAgo(now - startedAtMs)}` : '';
}

document.addEventListener('DOMContentLoaded', () => {
  poll();
  tick();
  setInterval(tick, 250);
});
