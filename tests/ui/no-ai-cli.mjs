// A server where no AI CLI can run (every kind's program is missing): the page says so
// plainly, and still works. The create form offers only Command, the other kinds shown
// with why they cannot run; the tasks form says what is missing and sends a task to a
// command worker, which gets the instruction as a line.
//
// Environment (besides lib.mjs's): WH_PROJECT (a folder for the worker).

import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, waitConn, api, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

run(async () => {
  const { page, close, assertClean } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const kinds = (await api('GET', '/api/ai-clis')).ai_clis;
    checkEqual(kinds.filter((k) => k.usable && !k.needs_command).map((k) => k.name), [], 'no AI CLI can run on this server');
    checkEqual(kinds.filter((k) => k.usable).map((k) => k.name), ['acp', 'command'], 'what runs a command of its own still can');

    // The create form: Command first and chosen; the others say why not.
    await page.click('#new-worker');
    await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
    checkEqual(await page.inputValue('#cw-kind'), 'command', 'Command is picked');
    const claude = await page.$eval('#cw-kind option[value="claude"]', (o) => [o.disabled, o.textContent]);
    check(claude[0] && claude[1].startsWith('Claude Code — unavailable: '), `Claude Code is offered disabled, with why (${claude[1]})`);
    await page.click('#cw-cancel');

    // Tasks with no worker yet: what is missing, and what to do.
    await page.click('#tab-tasks');
    await waitFor(() => page.isVisible('#task-kind-note'), 'the note on the tasks form');
    const empty = await page.textContent('#task-kind-note');
    check(empty.startsWith('No AI CLI can run on this server (') && empty.includes('create one with New worker'), `the note says what is missing and what to do (${empty})`);
    check(await page.$eval('#task-worker option[value=""]', (o) => o.disabled), '"any worker of a kind" cannot be picked');
    await shot(page, '32-tasks-without-ai-cli');
    await audit(page, 'the tasks form without an AI CLI');

    // A command worker: the task goes to it.
    const worker = await api('POST', '/api/workers', { name: 'catter', project_path: PROJECT, ai_cli_type: 'command', command: ['cat'] });
    await waitFor(async () => (await page.inputValue('#task-worker')) === worker.id, 'the command worker to be the target');
    const withWorker = await page.textContent('#task-kind-note');
    check(withWorker.includes('a command worker gets the instruction as a line on its input'), `the note says where the task goes (${withWorker})`);
    check(await page.isHidden('#task-kind-field'), 'no kind to pick');
    await page.fill('#task-instruction', 'hello from a task');
    await page.click('#task-form button[type="submit"]');
    await waitFor(async () => (await page.$$eval('#task-list .task .task-status', (els) => els.map((e) => e.textContent))).includes('completed'), 'the task to complete', 20000);
    check(await page.isHidden('#task-error'), 'no error');
    const events = await api('GET', `/api/workers/${worker.id}/events?since=0`);
    check(events.events.some((e) => e.type === 'output' && e.content && e.content.text === 'hello from a task'), 'the command worker got the instruction');
    assertClean();
  } finally {
    await close();
  }
});
