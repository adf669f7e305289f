// In the browser: create a `command` worker and a `claude` worker (the real Claude Code
// against the mock model API), send each a message, and see what comes back rendered
// for what it is: the tool call card with the command and its real output, the final
// answer as Markdown, thinking collapsed, the turn's result line, a queued message,
// ANSI colours, and a child's HTML shown as text. Also: stop/start, delete with
// confirmation, keyboard use, and the page at 390 px.
//
// Environment (besides lib.mjs's): WH_PROJECT (a project folder), WH_CLAUDE_ENV (JSON
// object of the environment Claude Code needs to talk to the mock; absent when Claude
// Code is not installed), WH_TOOL_OUTPUT (what the tool prints).

import { URL, openPage, audit, launch, run, log, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, pageState, api, history, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const CLAUDE_ENV = process.env.WH_CLAUDE_ENV ? JSON.parse(process.env.WH_CLAUDE_ENV) : null;
const TOOL_OUTPUT = process.env.WH_TOOL_OUTPUT || 'hello-from-tool';
const XSS = '<img src=x onerror=alert(1)>';

const rowText = (page, seqSelector) => page.$$eval(seqSelector, (els) => els.map((e) => e.textContent));

async function commandWorker(page) {
  const script = `while IFS= read -r l; do echo "you said: $l"; printf '\\033[1;31mred alert\\033[0m and \\033[32mgreen\\033[0m \\033[2K\\033]0;title\\007done\\n'; echo '${XSS}'; done`;
  const id = await createWorker(page, { kind: 'command', name: 'shell-bot', path: PROJECT, options: { command: `sh -c "${script.replace(/(["\\$`])/g, '\\$1')}"` } });
  log('command worker', id);
  const spec = await api('GET', `/api/workers/${id}`);
  checkEqual(spec.command, ['sh', '-c', script], 'the command field is split into argv like a shell would, without a shell');
  await waitFor(async () => (await page.textContent('#w-badge')) === 'running', 'the command worker to run');

  await sendMessage(page, 'hello from the browser');
  // Shown at once as pending, then as sent when its event arrives.
  await waitFor(() => page.$('#rows .row.user'), 'the message in the conversation');
  await waitFor(() => page.$(`#rows .row.out >> text=you said: hello from the browser`), 'the echo of the message');
  await waitFor(() => page.$('#rows .row.out >> text=' + JSON.stringify(XSS)), 'the HTML line');
  check(await page.$$eval('#pending .row', (els) => els.length) === 0, 'no message is left pending');
  const state = await page.textContent('#rows .row.user .state');
  checkEqual(state, 'sent', 'the message is marked sent');

  // The child's HTML is text: no element was made from it, and no dialog opened.
  const xss = await page.$$eval('#rows .row.out', (els, xss) => els.filter((e) => e.textContent === xss).length, XSS);
  checkEqual(xss, 1, 'the <img> line is shown once, as text');
  checkEqual(await page.$$eval('#rows img, #rows script', (els) => els.length), 0, 'no element was created from output');

  // ANSI: colours become spans, other escapes are dropped, none shows as text.
  const ansi = await page.$$eval('#rows .row.out', (els) => {
    const row = els.find((e) => e.textContent.includes('red alert'));
    const red = row.querySelector('.ansi-fg-1.ansi-bold');
    const green = row.querySelector('.ansi-fg-2');
    return { text: row.textContent, red: red && red.textContent, green: green && green.textContent };
  });
  checkEqual(ansi, { text: 'red alert and green done', red: 'red alert', green: 'green' }, 'ANSI colours are rendered and escape codes never shown');

  // Every event of the history is on the page, once, in order.
  const server = (await history(id)).map((e) => e.seq);
  checkEqual((await pageState(page)).domSeqs, server, 'the page shows the server history');
  await shot(page, '02-command-worker');
  await audit(page, 'a command worker');

  // Stop and start again with the buttons.
  await page.click('#act-stop');
  // A stop on purpose reads as one, not as a signal.
  await waitFor(async () => (await page.textContent('#w-badge')) === 'stopped', 'the worker to stop');
  await waitFor(() => page.$('#rows .row.status.notice >> text=Stopped'), 'the stop in the conversation');
  check(!(await page.isDisabled('#act-start')), 'Start is offered for a stopped command worker');
  await page.click('#act-start');
  await waitFor(async () => (await page.textContent('#w-badge')) === 'running', 'the worker to run again');
  return id;
}

async function claudeWorker(page, context) {
  const id = await createWorker(page, { kind: 'claude', name: 'claude-bot', path: PROJECT, options: { allowed_tools: 'Bash', env: CLAUDE_ENV } });
  log('claude worker', id);
  const spec = await api('GET', `/api/workers/${id}`);
  checkEqual(spec.allowed_tools, ['Bash'], 'allowed tools from the form');
  checkEqual(spec.ai_cli_type, 'claude', 'kind from the form');

  await sendMessage(page, 'Create the proof file');
  await waitFor(async () => (await page.textContent('#w-badge')) === 'busy', 'the worker to be busy');
  // A message sent while it works waits in the queue, and says so.
  await sendMessage(page, 'Once more, please');
  await waitFor(async () => {
    const labels = await page.$$eval('#rows .row.user .state, #pending .row .state', (els) => els.map((e) => e.textContent));
    return labels.some((l) => l.startsWith('queued'));
  }, 'the second message to show as queued', 20000);
  await waitFor(() => page.$('#queue:not([hidden]) .queue-item'), 'the queue strip');
  await shot(page, '03-claude-busy-with-queue');

  // The tool call card: name, command, real output.
  const card = await waitFor(() => page.$('#rows .tool-row .card .tool-state[data-state="ok"]'), 'the tool call to finish', 60000);
  check(card, 'a finished tool card');
  const tool = await page.$eval('#rows .tool-row .card', (c) => ({
    name: c.querySelector('.tool-name').textContent,
    command: c.querySelector('.cmd') && c.querySelector('.cmd').textContent,
    output: c.querySelector('.tool-output') && c.querySelector('.tool-output').textContent,
    open: c.open,
    error: c.classList.contains('error'),
  }));
  checkEqual(tool.name, 'Bash', 'the tool name');
  checkEqual(tool.command, 'echo hello-from-tool > proof.txt; cat proof.txt', 'the command shown as a command');
  check(tool.output && tool.output.includes(TOOL_OUTPUT), `the card shows the command's real output (${tool.output})`);
  check(!tool.error, 'the tool call is not marked as an error');

  // The final answer, as Markdown.
  await waitFor(() => page.$(`#rows .row.assistant >> text=The command printed: ${TOOL_OUTPUT}`), 'the final answer', 60000);
  const answer = await page.evaluate(() => {
    const all = document.querySelectorAll('#rows .row.assistant');
    const el = all[all.length - 1];
    return {
    items: Array.from(el.querySelectorAll('.md li'), (li) => li.textContent),
    code: el.querySelector('.codeblock code') && el.querySelector('.codeblock code').textContent,
    strong: el.querySelector('.md strong') && el.querySelector('.md strong').textContent,
    };
  });
  checkEqual(answer.items, ['first point', 'second point'], 'the list in the answer');
  checkEqual(answer.code, 'cat proof.txt', 'the fenced code block');
  checkEqual(answer.strong, 'proof', 'bold text');

  // Copy button on the code block.
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: URL });
  await page.click('#rows .row.assistant .codeblock .copy');
  await waitFor(async () => (await page.textContent('#rows .row.assistant .codeblock .copy')) === 'Copied', 'the copy button to say Copied');
  checkEqual(await page.evaluate(() => navigator.clipboard.readText()), 'cat proof.txt', 'the clipboard holds the code');

  // Thinking is there, collapsed.
  const thinking = await page.$eval('#rows details.thinking', (d) => ({ open: d.open, text: d.querySelector('.body').textContent }));
  check(!thinking.open, 'thinking is collapsed by default');
  check(thinking.text.includes('I will run the command'), 'thinking text');

  // The result line: duration, cost, tokens.
  const result = await page.$eval('#rows .row.result', (el) => ({
    outcome: el.querySelector('.outcome').textContent,
    duration: el.querySelector('.r-duration') && el.querySelector('.r-duration').textContent,
    cost: el.querySelector('.r-cost') && el.querySelector('.r-cost').textContent,
    tokens: el.querySelector('.r-tokens') && el.querySelector('.r-tokens').textContent,
  }));
  checkEqual(result.outcome, '✓ Done', 'the result outcome');
  check(/\d/.test(result.duration || ''), `the duration (${result.duration})`);
  check(/^\$\d/.test(result.cost || ''), `the cost (${result.cost})`);
  check(/\d+ in · \d+ out/.test(result.tokens || ''), `the token counts (${result.tokens})`);
  await shot(page, '04-claude-conversation');
  await audit(page, 'a worker with a conversation');

  // The queued message runs next, and is then shown as sent.
  await waitFor(async () => (await page.$$('#rows .row.result')).length >= 2, 'the queued message to run', 90000);
  await waitFor(async () => {
    const labels = await page.$$eval('#rows .row.user .state', (els) => els.map((e) => e.textContent));
    return labels.length === 2 && labels.every((l) => l === 'sent');
  }, 'both messages to be marked sent');
  await waitFor(async () => (await page.textContent('#w-badge')) === 'idle', 'the worker to be idle');
  check(await page.isHidden('#queue'), 'the queue strip is gone');

  const server = (await history(id)).map((e) => e.seq);
  checkEqual((await pageState(page)).domSeqs, server, 'the page shows the claude history exactly');

  // Open the thinking for the screenshot of the whole turn.
  await page.click('#rows details.thinking summary');
  await shot(page, '05-claude-turn-expanded');
  return id;
}

async function tasksPanel(page, claudeId) {
  await page.click('#tab-tasks');
  await page.waitForSelector('#task-form');
  await waitFor(async () => (await page.textContent('#task-list')).includes('No tasks'), 'the empty task list');
  // An empty instruction is refused in the form.
  await page.click('#task-form button[type="submit"]');
  await waitFor(() => page.isVisible('#task-error'), 'the form to say what is missing');
  if (!claudeId) return;
  const options = await page.$$eval('#task-worker option', (os) => os.map((o) => o.value));
  check(options.includes(claudeId), 'the claude worker is offered for tasks');

  // A one-off task on the claude worker, followed to its end.
  await page.selectOption('#task-worker', claudeId);
  await page.fill('#task-instruction', 'Create the proof file for the task');
  await page.click('#task-form button[type="submit"]');
  const done = await waitFor(async () => {
    const items = await page.$$eval('#task-list .task', (els) => els.map((e) => ({ status: e.querySelector('.task-status').textContent, text: e.textContent })));
    return items.find((t) => t.text.includes('for the task') && t.status === 'completed');
  }, 'the task to complete', 90000, 250);
  check(done.text.includes(`The command printed: ${TOOL_OUTPUT}`), `the task's result is shown (${done.text})`);

  // A scheduled task: it waits for its time; "Run now" runs it; "Cancel" stops it.
  await page.selectOption('#task-worker', claudeId);
  await page.fill('#task-instruction', 'Hourly check');
  await page.fill('#task-every', '3600');
  await page.click('#task-form button[type="submit"]');
  const hourly = async () => page.$$eval('#task-list .task', (els) => {
    const el = els.find((e) => e.textContent.includes('Hourly check'));
    return el && { id: el.dataset.id, status: el.querySelector('.task-status').textContent, text: el.textContent };
  });
  const first = await waitFor(hourly, 'the scheduled task');
  check(first.text.includes('every 1 h'), `the schedule is shown (${first.text})`);
  check(/next run/.test(first.text), 'the next run is shown');
  await shot(page, '16-tasks');
  await audit(page, 'the tasks view');
  await page.click(`#task-list .task[data-id="${first.id}"] .task-run`);
  await waitFor(async () => { const t = await hourly(); return t && t.status === 'completed' && /\b1 run(?!s)/.test(t.text); }, 'the scheduled task to run now', 90000, 250);
  await page.click(`#task-list .task[data-id="${first.id}"] .task-cancel`);
  await waitFor(async () => (await hourly()).status === 'cancelled', 'the scheduled task to be cancelled');
  const server = await api('GET', `/api/tasks/${first.id}`);
  checkEqual(server.status, 'cancelled', 'the server has the task cancelled');
  await shot(page, '17-tasks-done');
}

async function keyboardAndDelete(page) {
  // Keyboard: Tab reaches the worker list and Enter opens a worker.
  await page.goto(`${URL}/#/`);
  await page.waitForSelector('.worker-item');
  let focused = null;
  for (let i = 0; i < 30 && !focused; i++) {
    await page.keyboard.press('Tab');
    focused = await page.evaluate(() => (document.activeElement && document.activeElement.classList.contains('worker-item') ? document.activeElement.dataset.id : null));
  }
  check(focused, 'Tab reaches a worker in the list');
  await page.keyboard.press('Enter');
  await waitFor(async () => (await page.evaluate(() => window.location.hash)) === `#/w/${focused}`, 'Enter to open the focused worker');

  // Delete asks first, names the worker, and can be cancelled.
  const id = await createWorker(page, { kind: 'command', name: 'scratch', path: PROJECT, options: { command: 'cat' } });
  await page.click('#act-delete');
  await page.waitForSelector('#confirm-dialog[open]');
  check((await page.textContent('#confirm-title')).includes('scratch'), 'the confirmation names the worker');
  await shot(page, '06-delete-confirmation');
  await page.click('#confirm-cancel');
  await page.waitForSelector('#confirm-dialog:not([open])', { state: 'attached' });
  await api('GET', `/api/workers/${id}`); // still there
  await page.click('#act-delete');
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#confirm-ok');
  await waitFor(async () => !(await page.$(`.worker-item[data-id="${id}"]`)), 'the deleted worker to leave the list');
  const all = await api('GET', '/api/workers');
  check(!all.workers.some((w) => w.id === id), 'the worker is deleted on the server');
}

async function phone(context, cmdId) {
  const page = await context.newPage();
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(`${URL}/#/w/${cmdId}`);
  await waitConn(page, 'live');
  await waitFor(() => page.$('#rows .row.out'), 'the conversation at phone width');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  check(width <= 390, `nothing is wider than the phone (${width} px)`);
  // Usable: the composer is on screen and sends.
  const box = await page.$eval('#composer-input', (el) => { const r = el.getBoundingClientRect(); return { left: r.left, right: r.right, bottom: r.bottom }; });
  check(box.left >= 0 && box.right <= 390 && box.bottom <= 844, `the composer fits on screen (${JSON.stringify(box)})`);
  await sendMessage(page, 'from a phone');
  await waitFor(() => page.$('#rows .row.out >> text=you said: from a phone'), 'the answer at phone width');
  const actions = await page.$$eval('.worker-actions .button', (els) => els.filter((b) => !b.hidden).map((b) => { const r = b.getBoundingClientRect(); return r.right <= 390 && r.width >= 44; }));
  check(actions.every(Boolean), 'the action buttons fit and are big enough to tap');
  await shot(page, '07-phone-390-conversation');
  await audit(page, 'the conversation at 390 px');
  await page.click('#nav-toggle');
  await waitFor(async () => (await page.getAttribute('#nav-toggle', 'aria-expanded')) === 'true', 'the worker list to open');
  await page.waitForTimeout(250);
  await shot(page, '08-phone-390-workers');
  await page.keyboard.press('Escape');
  await page.goto(`${URL}/#/`);
  await page.waitForSelector('.worker-item');
  await shot(page, '09-phone-390-list');
  await page.close();
}

run(async () => {
  const { context, page, close, assertClean } = await launch();
  try {
    await openPage(page);
    await waitConn(page, 'live');
    await shot(page, '01-start');

    await page.click('#new-worker');
    await page.waitForSelector('#create-dialog[open]');
    await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds');
    const kinds = await page.$$eval('#cw-kind option', (os) => os.map((o) => ({ v: o.value, disabled: o.disabled, text: o.textContent })));
    const cmd = kinds.find((k) => k.v === 'command');
    check(cmd && !cmd.disabled, 'command is offered');
    const unavailable = kinds.filter((k) => k.disabled);
    check(unavailable.every((k) => k.text.includes('unavailable')), 'unavailable kinds say why');
    if (CLAUDE_ENV) check(kinds.some((k) => k.v === 'claude' && !k.disabled), 'claude is offered');
    await page.selectOption('#cw-kind', CLAUDE_ENV ? 'claude' : 'command');
    await page.click('#create-dialog .more-options summary');
    await shot(page, '10-create-worker-form');
    await audit(page, 'the create form');
    await page.click('#cw-cancel');

    const cmdId = await commandWorker(page);
    let claudeId = null;
    if (CLAUDE_ENV) {
      claudeId = await claudeWorker(page, context);
      // A turn of a worker you are not looking at, asked for by another client, is
      // marked in the list (its status changes are pushed), until you look.
      await page.click(`.worker-item[data-id="${cmdId}"]`);
      await waitConn(page, 'live');
      await api('POST', `/api/workers/${claudeId}/messages`, { content: 'while you looked elsewhere' });
      await waitFor(() => page.$(`.worker-item[data-id="${claudeId}"] .new-dot`), 'the new-activity mark on the other worker', 15000);
      check(!(await page.$(`.worker-item[data-id="${cmdId}"] .new-dot`)), 'no mark on the worker being watched');
      await waitFor(async () => (await api('GET', `/api/workers/${claudeId}`)).status === 'idle', 'the turn to end', 60000);
      await page.click(`.worker-item[data-id="${claudeId}"]`);
      await waitFor(() => page.$('#rows .row.user >> text=while you looked elsewhere'), 'the message on the other worker');
      await waitFor(async () => !(await page.$(`.worker-item[data-id="${claudeId}"] .new-dot`)), 'the mark to go once seen');
    } else {
      log('skipped the claude part: Claude Code is not installed');
    }
    await tasksPanel(page, claudeId);
    await phone(context, cmdId);
    await keyboardAndDelete(page);
    assertClean();
  } finally {
    await close();
  }
});
