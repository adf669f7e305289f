// The worker list and the footer follow the server without polling: workers created,
// changed and deleted by another client (here the REST API, from node) appear, change
// and go without a reload; the open worker's deletion is shown; the footer's uptime
// counts up and its figures follow the server's pushes; and the page sends no request
// for the list at all (it comes over /ws), and none to the API while idle.
//
// The server pushes system:status every 2 s here (--status-interval 2).

import { openPage, audit, launch, run, log, check, checkEqual, waitFor, shot, waitConn, api, sleep, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const IDLE_MS = 5000;

const footer = (page) => page.textContent('#status-line');
const uptime = async (page) => {
  const m = /up (?:(\d+) s|(\d+) min (\d+) s)/.exec(await footer(page));
  return m ? (m[1] !== undefined ? Number(m[1]) : Number(m[2]) * 60 + Number(m[3])) : null;
};
const badge = (page, id) => page.$eval(`.worker-item[data-id="${id}"] .badge`, (b) => b.textContent).catch(() => null);
const command = (name) => ({ name, project_path: PROJECT, ai_cli_type: 'command', command: ['cat'] });

run(async () => {
  const { context, page, close, assertClean } = await launch();
  const requests = [];
  page.on('request', (r) => requests.push({ at: Date.now(), method: r.method(), path: new globalThis.URL(r.url()).pathname }));
  try {
    await openPage(page);
    await waitConn(page, 'live');
    checkEqual(await page.textContent('#conn-text'), 'Connected', 'the indicator says the list is connected');
    await waitFor(async () => (await uptime(page)) !== null, 'the status in the footer');

    // Created by another client: in the list without a reload, with its status as it changes.
    const a = await api('POST', '/api/workers', command('from-elsewhere'));
    await waitFor(async () => (await badge(page, a.id)) === 'running', 'the new worker in the list, running', 10000);
    await waitFor(async () => /\b1 worker \(1 running\)/.test(await footer(page)), 'the footer to count it');
    await api('POST', `/api/workers/${a.id}/stop`, {});
    await waitFor(async () => (await badge(page, a.id)) === 'stopped', 'its stop in the list', 10000);
    await api('POST', `/api/workers/${a.id}/start`, {});
    await waitFor(async () => (await badge(page, a.id)) === 'running', 'its start again in the list', 10000);

    // Deleted by another client: off the list.
    const b = await api('POST', '/api/workers', command('short-lived'));
    await waitFor(() => page.$(`.worker-item[data-id="${b.id}"]`), 'the second worker in the list', 10000);
    await api('DELETE', `/api/workers/${b.id}`);
    await waitFor(async () => !(await page.$(`.worker-item[data-id="${b.id}"]`)), 'the deleted worker to leave the list', 10000);
    await waitFor(async () => /\b1 worker\b/.test(await footer(page)), 'the footer to count one worker again');
    await shot(page, '23-list-from-pushes');

    // Idle: the uptime counts up, the server's pushes refresh the figures (a second page
    // is a second connection), and the page asks the API for nothing.
    const idleFrom = Date.now();
    const upBefore = await uptime(page);
    const other = await context.newPage();
    await other.goto(page.url());
    await waitFor(async () => /\b2 connections\b/.test(await footer(page)), 'a push to count the second page', 10000);
    await other.close();
    await sleep(Math.max(0, IDLE_MS - (Date.now() - idleFrom)));
    const upAfter = await uptime(page);
    log(`uptime ${upBefore} s, then ${upAfter} s after ${Date.now() - idleFrom} ms idle`);
    check(upAfter >= upBefore + Math.floor(IDLE_MS / 1000) - 1, `the uptime advances (${upBefore} s, then ${upAfter} s)`);
    const idle = requests.filter((r) => r.at >= idleFrom && r.path.startsWith('/api/'));
    checkEqual(idle.map((r) => `${r.method} ${r.path}`), [], 'no request to the API while idle');
    const listed = requests.filter((r) => r.path === '/api/workers' && r.method === 'GET');
    checkEqual(listed.length, 0, 'the list never came from GET /api/workers: it came over /ws');

    // The open worker deleted by another client: the page says so.
    await page.click(`.worker-item[data-id="${a.id}"]`);
    await waitConn(page, 'live');
    await api('DELETE', `/api/workers/${a.id}`);
    await waitFor(async () => (await page.textContent('#conn-text')) === 'Worker deleted', 'the indicator to say the worker was deleted', 10000);
    check(await page.isVisible('#conn-banner'), 'the banner says so');
    check((await page.textContent('#conn-banner')).includes('deleted'), 'the banner says the worker was deleted');
    check(await page.isDisabled('#composer-input') && await page.isDisabled('#act-delete'), 'a deleted worker takes no message and no action');
    check(!(await page.$(`.worker-item[data-id="${a.id}"]`)), 'it left the list');
    await shot(page, '24-open-worker-deleted');
    await audit(page, 'a worker deleted while open');
    assertClean();
  } finally {
    await close();
  }
});
