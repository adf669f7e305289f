// Shared helpers for the browser tests. tests/ui.rs starts the real server (and the
// mock model API) and runs each script with node; the script drives the system
// Chromium through playwright-core and exits non-zero on failure.
//
// Environment: WH_URL (the server), WH_CHROMIUM (the browser), WH_SCREENSHOTS (where
// screenshots go). Lines a script prints that start with "@@ " are requests to the Rust
// harness (for example to restart the server); its answer comes back on stdin.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { chromium } from 'playwright-core';

export const URL = required('WH_URL').replace(/\/$/, '');
export const SHOTS = process.env.WH_SCREENSHOTS || path.resolve('target/ui-screenshots');
/** The server's token (tests/ui.rs passes it; the server runs with authentication on). */
export const TOKEN = process.env.WH_TOKEN || '';

export function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run the tests through cargo test --test ui)`);
  return v;
}

export function log(...args) {
  console.log(`[${new Date().toISOString().slice(11, 23)}]`, ...args);
}

export function check(cond, message) {
  if (!cond) throw new Error(`check failed: ${message}`);
}

export function checkEqual(actual, expected, message) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`check failed: ${message}\n  expected: ${e.slice(0, 2000)}\n  actual:   ${a.slice(0, 2000)}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value; throws with `what` after `timeout` ms. */
export async function waitFor(fn, what, timeout = 30000, every = 100) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await sleep(every);
  }
}

/** The server's REST API, from node (no browser). */
export async function api(method, p, body) {
  const init = { method, headers: {} };
  if (TOKEN) init.headers.Authorization = `Bearer ${TOKEN}`;
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(`${URL}${p}`, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
  return data;
}

/** Every event of a worker's history, from the server. */
export async function history(id) {
  const events = [];
  let since = 0;
  for (;;) {
    const page = await api('GET', `/api/workers/${encodeURIComponent(id)}/events?since=${since}&limit=10000`);
    if (!page.events.length) return events;
    events.push(...page.events);
    since = page.events[page.events.length - 1].seq;
  }
}

/**
 * Starts Chromium with a fresh profile. Returns the context, a page, and the list of
 * problems seen (page errors, console errors, dialogs): tests call `assertClean`.
 */
export async function launch({ viewport = { width: 1280, height: 800 }, allowConsole = [] } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'workerhub-ui-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: required('WH_CHROMIUM'),
    headless: true,
    viewport,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  const problems = [];
  const watch = (page) => {
    page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
    page.on('console', (msg) => {
      if (msg.type() !== 'error' && msg.type() !== 'warning') return;
      const text = msg.text();
      if (allowConsole.some((re) => re.test(text))) return;
      if (msg.type() === 'warning' && !/Content Security Policy|Refused/.test(text)) return;
      problems.push(`console ${msg.type()}: ${text}`);
    });
    page.on('dialog', (dialog) => {
      problems.push(`a dialog opened (${dialog.type()}): ${dialog.message()}`);
      dialog.dismiss().catch(() => {});
    });
  };
  context.on('page', watch);
  const page = context.pages()[0] || await context.newPage();
  watch(page);
  const close = async () => {
    await context.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  const assertClean = () => {
    if (problems.length) throw new Error(`the page had problems:\n  ${problems.join('\n  ')}`);
  };
  return { context, page, problems, close, assertClean };
}

/**
 * Opens the page the way the server's start-up line says: `/?token=T`. The server
 * answers with its cookie and a redirect, so the token does not stay in the address.
 */
export async function openPage(page, hash = '') {
  await page.goto(TOKEN ? `${URL}/?token=${encodeURIComponent(TOKEN)}` : `${URL}/`);
  const here = page.url();
  check(!here.includes('token'), `the token left the address bar (${here})`);
  if (hash) await page.goto(`${URL}/${hash}`);
}

export async function shot(page, name, opts = {}) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `${name}.png`);
  await page.screenshot({ path: file, ...opts });
  log(`screenshot ${file}`);
  return file;
}

let axeSource = null;
/**
 * Checks the page with axe-core (WCAG 2 A/AA rules) and fails on serious or critical
 * problems. axe is evaluated through the DevTools protocol, which the page's CSP does
 * not govern (the page itself never loads it).
 */
export async function audit(page, what, { exclude = [] } = {}) {
  if (!axeSource) axeSource = fs.readFileSync(new globalThis.URL('./node_modules/axe-core/axe.min.js', import.meta.url), 'utf8');
  if (!(await page.evaluate(() => typeof window.axe !== 'undefined'))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async (exclude) => {
    const result = await window.axe.run({ exclude: exclude.map((s) => [s]) }, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }, resultTypes: ['violations'] });
    return result.violations
      .filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }, exclude);
  if (violations.length) throw new Error(`accessibility problems in ${what}:\n  ${violations.join('\n  ')}`);
  log(`accessibility: ${what} ok`);
}

/** What the page holds for the open worker (seqs in memory and on the page). */
export async function pageState(page) {
  return page.evaluate(() => window.workerhub.debug());
}

/**
 * Opens the create dialog, fills it and submits; returns the new worker's id.
 * `options` fills the kind's option fields by option name (`command`, `allowed_tools`,
 * ...); an object (for `env`) is written as NAME=value lines.
 */
export async function createWorker(page, { kind, name, path: dir, options = {} }) {
  await page.click('#new-worker');
  await page.waitForSelector('#create-dialog[open]');
  await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
  await page.selectOption('#cw-kind', kind);
  await page.fill('#cw-name', name);
  await page.fill('#cw-path', dir);
  for (const [option, value] of Object.entries(options)) {
    const field = `#cw-opt-${option}`;
    if (await page.$eval('#cw-more', (more, field) => more.contains(document.querySelector(field)) && !more.open, field)) await page.click('#cw-more summary');
    const text = typeof value === 'object' ? Object.entries(value).map(([k, v]) => `${k}=${v}`).join('\n') : value;
    if (await page.$eval(field, (el) => el.tagName === 'SELECT')) await page.selectOption(field, text);
    else await page.fill(field, text);
  }
  await page.click('#cw-submit');
  await page.waitForSelector('#create-dialog:not([open])', { state: 'attached' });
  const id = await waitFor(async () => {
    const m = /^#\/w\/(.+)$/.exec(await page.evaluate(() => window.location.hash));
    return m ? decodeURIComponent(m[1]) : null;
  }, 'the page to open the new worker');
  await waitFor(async () => (await pageState(page)).id === id, 'the conversation of the new worker');
  return id;
}

/** Types a message in the composer and sends it with Enter. */
export async function sendMessage(page, text) {
  await page.click('#composer-input');
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** Waits until the indicator is in `state` (data-state). */
export async function waitConn(page, state, timeout = 30000) {
  await waitFor(async () => (await page.getAttribute('#conn', 'data-state')) === state, `the connection indicator to say ${state}`, timeout);
}

let lines = null;
/** Asks the Rust harness to do `command` and waits for its one-line answer. */
export async function harness(command) {
  if (!lines) {
    const rl = readline.createInterface({ input: process.stdin });
    lines = [];
    const waiters = [];
    rl.on('line', (line) => {
      const w = waiters.shift();
      if (w) w(line); else lines.push(line);
    });
    lines.next = () => (lines.length ? Promise.resolve(lines.shift()) : new Promise((r) => waiters.push(r)));
  }
  process.stdout.write(`@@ ${command}\n`);
  const answer = await lines.next();
  log(`harness: ${command} -> ${answer}`);
  return answer;
}

/** Runs `main`, reporting failure with a non-zero exit code. */
export function run(main) {
  const timer = setTimeout(() => {
    console.error('the script took too long');
    process.exit(3);
  }, Number(process.env.WH_SCRIPT_TIMEOUT_MS || 150000));
  main().then(() => {
    clearTimeout(timer);
    log('ok');
    process.exit(0);
  }, (err) => {
    console.error(err && err.stack ? err.stack : err);
    process.exit(1);
  });
}
