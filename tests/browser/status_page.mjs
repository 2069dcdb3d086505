// Drives Debian's chromium, headless, against aigw's status page; tests/status_page.rs runs
// it beside a live gateway and emulator and moves the phases along over stdin/stdout:
//
//   node status_page.mjs <status_url> <screenshot_dir>
//   -> SERVING            both targets show requests > 0, healthy
//   <- THROTTLED          the Rust side made one target's model answer 429s
//   -> UNHEALTHY <label>  the page shows that target out of rotation
//   <- REPAIRED           the fault is gone
//   -> HEALTHY <label>    the page shows it back once fail_timeout passed
//   -> OK                 and the page asked nothing of any other origin
//
// Any failure goes to stderr and exits 1.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const [statusUrl, shotDir] = process.argv.slice(2);
if (!statusUrl || !shotDir) {
  console.error('usage: node status_page.mjs <status_url> <screenshot_dir>');
  process.exit(2);
}
const origin = new URL(statusUrl).origin;
const executablePath = process.env.AIGW_CHROMIUM || '/usr/bin/chromium';
const PHASE_TIMEOUT_MS = 30_000;


const lines = createInterface({ input: process.stdin });
const pending = [];
const waiting = [];
lines.on('line', (line) => (waiting.length ? waiting.shift()(line) : pending.push(line)));
// The test went away: the next expected line never comes, so fail rather than wait.
let closed = false;
lines.on('close', () => {
  closed = true;
  waiting.splice(0).forEach((resolve) => resolve('(stdin closed)'));
});
function nextLine() {
  if (pending.length) return Promise.resolve(pending.shift());
  if (closed) return Promise.resolve('(stdin closed)');
  return new Promise((resolve) => waiting.push(resolve));
}
async function expectLine(word) {
  const line = (await nextLine()).trim();
  if (line !== word) throw new Error(`expected ${word} from the test, got ${JSON.stringify(line)}`);
}
const say = (line) => process.stdout.write(line + '\n');

// The figures of every target row, as the page shows them.
async function rows(page) {
  return page.$$eval('tr[data-target]', (trs) =>
    trs.map((tr) => ({
      target: tr.dataset.target,
      health: tr.dataset.health,
      requests: Number(tr.dataset.requests),
      text: tr.innerText,
    })),
  );
}

async function until(page, what, predicate) {
  const deadline = Date.now() + PHASE_TIMEOUT_MS;
  let last = [];
  while (Date.now() < deadline) {
    last = await rows(page);
    const found = predicate(last);
    if (found) return found;
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}; the page shows ${JSON.stringify(last, null, 1)}`);
}

const userDataDir = mkdtempSync(join(tmpdir(), 'aigw-chromium-'));
let context;
let failed = false;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const page = context.pages()[0] || (await context.newPage());
  const requests = [];
  const problems = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('console', (message) => {
    // A CSP violation is reported on the console: the page must run under its own policy.
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });

  const response = await page.goto(statusUrl, { waitUntil: 'load' });
  if (!response || response.status() !== 200) throw new Error(`GET ${statusUrl}: ${response && response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  if (!csp.includes("default-src 'self'")) throw new Error(`weak or missing CSP: ${csp}`);

  const serving = await until(page, 'two targets serving', (rs) =>
    rs.length >= 2 && rs.every((r) => r.requests > 0 && r.health === 'healthy') ? rs : null,
  );
  for (const r of serving) {
    if (!r.text.includes(r.target)) throw new Error(`row of ${r.target} does not name it: ${r.text}`);
  }
  // Fields newer gateways add are shown when the JSON has them (read outside the page, so
  // this fetch is not among the page's requests).
  const doc = await (await context.request.get(`${origin}/status/targets`)).json();
  const route = doc.routes[0];
  const head = await page.textContent(`article[data-route="${route.name}"] .head`);
  if (route.algorithm && !head.includes(route.algorithm)) throw new Error(`no algorithm in: ${head}`);
  if (route.failovers !== undefined && !head.includes('failovers')) throw new Error(`no failovers in: ${head}`);
  say('SERVING');

  await expectLine('THROTTLED');
  const out = await until(page, 'a target out of rotation', (rs) => rs.find((r) => r.health === 'unhealthy'));
  if (!/OUT/.test(out.text)) throw new Error(`an unhealthy row should say OUT: ${out.text}`);
  const outDoc = await (await context.request.get(`${origin}/status/targets`)).json();
  const outTarget = outDoc.routes.flatMap((r) => r.targets).find((t) => t.target === out.target);
  const kinds = Object.keys((outTarget && outTarget.failures_by_kind) || {});
  await until(page, `failures by kind (${kinds.join(', ')}) of ${out.target}`, (rs) =>
    rs.find((r) => r.target === out.target && kinds.every((kind) => r.text.includes(kind))),
  );
  // What /status/overview reports, when the gateway serves it: the version, the recent
  // errors (the Rust side sent one malformed request), the running configuration.
  const overview = await context.request.get(`${origin}/status/overview`);
  if (overview.ok()) {
    const ov = await overview.json();
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while ((await page.$$('#errors tbody tr')).length < ov.recent_errors.length && Date.now() < deadline) {
      await page.waitForTimeout(200);
    }
    const errorRows = await page.$$eval('#errors tbody tr', (trs) => trs.map((tr) => tr.innerText));
    if (ov.recent_errors.length === 0 || errorRows.length === 0) throw new Error(`no recent errors shown: ${errorRows}`);
    if (!errorRows.some((row) => row.includes('400'))) throw new Error(`the 400 is not shown: ${errorRows}`);
    const version = await page.textContent('#version');
    if (!version.includes(ov.version)) throw new Error(`version ${ov.version} not shown: ${version}`);
    const config = await page.textContent('#config');
    for (const r of ov.config.routes) {
      if (!config.includes(r.name) || !r.targets.every((t) => config.includes(t.label))) {
        throw new Error(`the configuration of ${r.name} is not shown: ${config}`);
      }
    }
  }
  const summary = await page.textContent('#summary');
  if (!summary.includes(out.target)) throw new Error(`the summary does not name ${out.target}: ${summary}`);
  // Let the history and the error table fill for the picture (longer for the docs' one).
  await page.waitForTimeout(Number(process.env.AIGW_PICTURE_WAIT_MS || 1500));
  await page.screenshot({ path: join(shotDir, 'status-page-unhealthy.png'), fullPage: true });
  say(`UNHEALTHY ${out.target}`);

  await expectLine('REPAIRED');
  await until(page, `${out.target} back in rotation`, (rs) =>
    rs.find((r) => r.target === out.target && r.health === 'healthy'),
  );
  await page.waitForTimeout(1500);
  await page.screenshot({ path: join(shotDir, 'status-page.png'), fullPage: true });
  say(`HEALTHY ${out.target}`);

  const foreign = requests.filter((url) => new URL(url).origin !== origin);
  if (foreign.length) throw new Error(`requests outside ${origin}: ${foreign.join(', ')}`);
  if (!requests.some((url) => url.endsWith('/status/targets'))) throw new Error(`never polled: ${requests.join(', ')}`);
  if (problems.length) throw new Error(`the page reported problems:\n${problems.join('\n')}`);
  say('OK');
} catch (error) {
  failed = true;
  console.error(`status page test failed: ${error && error.stack ? error.stack : error}`);
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
  lines.close();
}
process.exit(failed ? 1 : 0);
