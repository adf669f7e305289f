// What a newcomer meets first, in the page, against the real server and a scripted
// Claude Code (fake-claude.mjs) with no API key anywhere:
//
// * the kind picker says that Claude Code has no key, and what to set; the folder field
//   suggests the server's project root, then the folders used last;
// * an unreachable API: its retries inline as they happen ("API unreachable, retry 3 of
//   10, next in 4 s"), then the error once, in words, with its hint;
// * a missing and a refused key: said once per turn, with the hint;
// * a queued message is a bubble with its place in the queue, and runs (sent) after an
//   interrupt of the turn before it; a session that could not be resumed is said;
// * a stopped worker says "stopped"; counts read "1 worker", "2 workers";
// * at phone width, a toast does not cover the composer.
//
// Environment (besides lib.mjs's): WH_PROJECT (a folder under WH_ROOT, the server's
// --project-root).

import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, api, required, sleep } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const ROOT = required('WH_ROOT');

const bubbles = (page) => page.$$eval('#rows .row.user', (els) => els.map((e) => [e.querySelector('.body').textContent, e.querySelector('.state').textContent]));
const visibleTexts = (page, sel) => page.$$eval(sel, (els) => els.filter((e) => e.offsetParent !== null).map((e) => e.textContent));

run(async () => {
  const { page, close, assertClean } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const kinds = await api('GET', '/api/ai-clis');
    const claude = kinds.ai_clis.find((k) => k.name === 'claude');
    checkEqual(claude.credentials.state, 'missing', 'the server finds no key for Claude Code (the test gives it none)');

    // ---- the kind picker and the folder ----
    await page.click('#new-worker');
    await page.waitForSelector('#create-dialog[open]');
    await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
    checkEqual(await page.$eval('#cw-kind option[value="claude"]', (o) => o.textContent), 'Claude Code 0.0.1 — no API key found', 'the picker says the kind has no key');
    await page.selectOption('#cw-kind', 'claude');
    const note = await page.textContent('#cw-kind-note');
    check(note.startsWith('No API key found for Claude Code') && note.includes('set ANTHROPIC_API_KEY'), `the note under the picker says what to set (${note})`);
    checkEqual(await page.$$eval('#cw-path-list option', (os) => os.map((o) => o.value)), [ROOT], 'the folder field suggests the project root');
    await shot(page, '29-create-no-key');
    await audit(page, 'the create form with a kind without a key');
    await page.click('#cw-cancel');
    const id = await createWorker(page, { kind: 'claude', name: 'newcomer', path: PROJECT });
    await page.click('#new-worker');
    await waitFor(async () => (await page.$$eval('#cw-path-list option', (os) => os.map((o) => o.value))).join() === [PROJECT, ROOT].join(), 'the folder just used, first');
    await page.click('#cw-cancel');

    // ---- an API that cannot be reached ----
    await sendMessage(page, 'retry please');
    await waitFor(() => page.$('#rows .error-box[data-code="api_unreachable"]'), 'the final error');
    checkEqual(await visibleTexts(page, '#rows .row.retry .retry-text'), ['API unreachable, retry 3 of 10, next in 4 s'], 'the retries read in words, the latest shown');
    const unreachable = await page.$eval('#rows .error-box[data-code="api_unreachable"]', (e) => ({
      title: e.querySelector('.error-title').textContent,
      hint: e.querySelector('.error-hint').textContent,
    }));
    checkEqual(unreachable.title, 'Model API unreachable', 'the error in plain words');
    check(unreachable.hint.startsWith('What to do: check that this machine reaches the API'), `with its hint (${unreachable.hint})`);
    await waitFor(() => page.$('#rows .row.result.error'), 'the failed result');
    checkEqual(await page.$$('#rows .row.result .result-text').then((e) => e.length), 0, 'the failure is said once: not again under the result');
    await page.check('#show-quiet');
    checkEqual(await visibleTexts(page, '#rows .row.retry .retry-text'), ['API unreachable, retry 1 of 10, next in 1 s', 'API unreachable, retry 2 of 10, next in 2 s', 'API unreachable, retry 3 of 10, next in 4 s'], 'All events shows every retry as it came');
    await page.uncheck('#show-quiet');
    const shown = await page.$eval('#rows', (e) => e.innerText);
    check(!shown.includes('api_retry') && !shown.includes('{"'), 'no raw JSON is shown');

    // ---- a missing key, a refused key ----
    await sendMessage(page, 'no key here');
    await waitFor(() => page.$('#rows .error-box[data-code="credentials_missing"]'), 'the missing key');
    await sendMessage(page, 'bad key here');
    await waitFor(() => page.$('#rows .error-box[data-code="credentials_rejected"]'), 'the refused key');
    await waitFor(async () => (await page.$$('#rows .row.result.error')).length === 3, 'the three failed turns');
    const keys = await page.$$eval('#rows .error-box[data-code^="credentials"]', (els) => els.map((e) => [e.dataset.code, e.querySelector('.error-title').textContent, e.querySelector('.error-hint').textContent]));
    checkEqual(keys.map((k) => k.slice(0, 2)), [['credentials_missing', 'No API key'], ['credentials_rejected', 'API key refused']], 'each key problem once per turn, in words');
    for (const [, , hint] of keys) check(hint.includes('set ANTHROPIC_API_KEY'), `with what to set (${hint})`);
    await shot(page, '30-retries-and-key-errors');
    await audit(page, 'retries and errors');

    // ---- a queued message runs after an interrupt ----
    await sendMessage(page, 'slow turn');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'busy', 'the slow turn');
    await sendMessage(page, 'waits its turn');
    await waitFor(async () => (await bubbles(page)).some(([t, s]) => t === 'waits its turn' && s === 'queued #1'), 'a queued bubble with its position');
    await page.click('#act-interrupt');
    await waitFor(async () => (await bubbles(page)).some(([t, s]) => t === 'waits its turn' && s === 'sent'), 'the queued message to run after the interrupt');
    await waitFor(() => page.$('#rows .row.assistant >> text=Summary'), 'its turn to answer');

    // ---- a session that cannot be resumed: said, not hidden ----
    await sendMessage(page, 'forget me');
    await waitFor(() => page.$('#rows .error-box[data-code="turn_failed"]'), 'the turn to fail with the process');
    await sendMessage(page, 'hello again');
    const lost = await waitFor(() => page.$eval('#rows .row.session-lost', (e) => (e.offsetParent ? e.textContent : null)).catch(() => null), 'the lost session to be said');
    check(lost.startsWith('The earlier session could not be resumed'), `a lost session is said in the conversation (${lost})`);
    await waitFor(async () => (await page.$$('#rows .row.assistant >> text=Summary')).length === 2, 'the new session to answer');

    // ---- wording: stopped, and counts ----
    await waitFor(async () => / 1 worker \(/.test(await page.textContent('#status-line')), 'the footer to say "1 worker"', 15000);
    const sleeper = await api('POST', '/api/workers', { name: 'sleeper', project_path: PROJECT, ai_cli_type: 'command', command: ['sleep', '1000'] });
    await page.click(`.worker-item[data-id="${sleeper.id}"]`);
    await waitFor(async () => (await page.textContent('#w-badge')) === 'running', 'the command to run');
    await page.click('#act-stop');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'stopped', 'the badge to say stopped');
    await waitFor(() => page.$('#rows .row.status.notice >> text=Stopped'), 'the conversation to say stopped');
    checkEqual(await page.$eval(`.worker-item[data-id="${sleeper.id}"] .badge`, (b) => b.textContent), 'stopped', 'the list says stopped');
    const words = await page.$eval('#rows', (e) => e.innerText);
    check(!/signal 15|SIGTERM/.test(words), 'no signal number for a stop');
    await waitFor(async () => / 2 workers \(/.test(await page.textContent('#status-line')), 'the footer to say "2 workers"', 15000);

    // ---- phone width: a toast leaves the composer free ----
    await page.setViewportSize({ width: 390, height: 844 });
    await page.evaluate((w) => { window.location.hash = `#/w/${encodeURIComponent(w)}`; }, id);
    await waitFor(async () => (await page.evaluate(() => window.workerhub.debug().id)) === id, 'the claude worker');
    await sendMessage(page, 'slow again');
    await waitFor(async () => (await page.textContent('#w-badge')) === 'busy', 'the slow turn');
    await sendMessage(page, 'dropped by the stop');
    await waitFor(async () => (await bubbles(page)).some(([t, s]) => t === 'dropped by the stop' && s === 'queued #1'), 'the queued message');
    await page.click('#act-stop');
    const toast = await waitFor(() => page.$eval('.toast', (t) => t.textContent).catch(() => null), 'the toast');
    checkEqual(toast, 'Stopped; 1 queued message dropped.', 'the toast counts in words');
    await sleep(300);
    const overlap = await page.evaluate(() => {
      const t = document.querySelector('.toast').getBoundingClientRect();
      const c = document.getElementById('composer').getBoundingClientRect();
      return { toast: [t.top, t.bottom], composer: [c.top, c.bottom], overlaps: t.bottom > c.top && t.top < c.bottom };
    });
    check(!overlap.overlaps, `the toast does not cover the composer (${JSON.stringify(overlap)})`);
    await waitFor(() => page.$('#rows .row.status.notice >> text=Session stopped'), 'the session to say it stopped');
    check(!/SIGTERM|signal 15/.test(await page.$eval('#rows', (e) => e.innerText)), 'no signal for a stopped session');
    await shot(page, '31-phone-toast');
    assertClean();
  } finally {
    await close();
  }
});
