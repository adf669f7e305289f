// A worker on another machine, from the page: the new-worker form offers the hosts of
// the server's hosts file (a real sshd the harness started, named local-ssh), checks
// one, and creates a `cat` worker there; awkward messages come back byte for byte; the
// host is shown in the list and the header. The harness then stops the sshd: the worker
// shows `disconnected` with its reason, and a message is refused; the sshd comes back
// and so does the worker's status, without a reload.
//
// Environment (besides lib.mjs's): WH_PROJECT (an absolute folder, on the "host");
// WH_CLAUDE_ENV (JSON, when Claude Code is installed): the environment of a Claude Code
// worker on the host talking to the harness's mock model, whose tool call runs there.
// Harness requests: `stop-sshd`, `start-sshd`.

import fs from 'node:fs';
import path from 'node:path';
import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, sendMessage, waitConn, api, harness, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');
const HOST = 'local-ssh';

/** The output lines the page shows, as text. */
const outputs = (page) => page.$$eval('#rows .row.out', (els) => els.map((e) => e.textContent));

/** Sends `text` and waits for cat to print it back, exactly. */
async function echo(page, text) {
  const before = (await outputs(page)).filter((t) => t === text).length;
  await sendMessage(page, text);
  await waitFor(async () => (await outputs(page)).filter((t) => t === text).length > before, `cat to echo ${JSON.stringify(text)}`, 20000);
}

const badgeOf = (page) => page.$eval('#w-badge', (b) => ({ status: b.dataset.status, text: b.textContent }));

run(async () => {
  const { page, close, assertClean } = await launch({
    viewport: { width: 1200, height: 900 },
    // The message sent while the host is down is refused with a 503 (host_unreachable).
    allowConsole: [/Failed to load resource: the server responded with a status of 503/],
  });
  try {
    await openPage(page);
    await waitConn(page, 'live');

    // ---- the form: a Host picker, this machine first ----
    await page.click('#new-worker');
    await page.waitForSelector('#create-dialog[open]');
    await waitFor(() => page.isVisible('#cw-host-field'), 'the host picker (the server has hosts)');
    const options = await page.$$eval('#cw-host option', (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
    checkEqual(options.map((o) => o.value), ['', HOST], 'this machine first, then each host of the hosts file');
    checkEqual(options[0].text, 'This machine', 'the first choice reads "This machine"');
    check(options[1].text.startsWith(`${HOST} — `), `a host reads with its state (${options[1].text})`);
    check(await page.isHidden('#cw-host-check'), 'nothing to check for this machine');
    checkEqual(await page.getAttribute('#cw-path', 'list'), 'cw-path-list', 'local folders are suggested for this machine');

    await page.selectOption('#cw-host', HOST);
    checkEqual(await page.textContent('#cw-path-label'), `Project folder on ${HOST}`, 'the folder is a path on the host');
    checkEqual(await page.getAttribute('#cw-path', 'list'), null, 'no local folder is suggested for a host');
    await page.click('#cw-host-check');
    await waitFor(async () => /^Reachable in \d+ ms/.test(await page.textContent('#cw-host-note')), 'the check to say the host is reachable', 30000);
    const note = await page.textContent('#cw-host-note');
    check(/Linux/.test(note), `the check names the host's OS (${note})`);
    const checked = await page.$eval('#cw-host', (s) => s.options[s.selectedIndex].textContent);
    check(/^local-ssh — reachable, \d+ ms$/.test(checked), `the host's choice says what the check found (${checked})`);

    // ---- a cat worker there ----
    await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
    await page.selectOption('#cw-kind', 'command');
    await page.fill('#cw-name', 'remote-cat');
    await page.fill('#cw-path', 'relative/folder');
    await page.fill('#cw-opt-command', 'cat');
    await page.click('#cw-submit');
    await waitFor(async () => /absolute path on local-ssh/.test(await page.textContent('#cw-error')), 'the form to want an absolute path on the host');
    await page.fill('#cw-path', PROJECT);
    await shot(page, '40-create-on-a-host');
    await audit(page, 'the create form with a host');
    await page.click('#cw-submit');
    await page.waitForSelector('#create-dialog:not([open])', { state: 'attached' });
    const id = await waitFor(async () => (/^#\/w\/(.+)$/.exec(await page.evaluate(() => window.location.hash)) || [])[1], 'the new worker to open');
    const view = await api('GET', `/api/workers/${id}`);
    checkEqual([view.host, view.project_path], [HOST, PROJECT], 'the worker runs on the host, in its folder');
    await waitFor(async () => (await badgeOf(page)).status === 'running', 'the remote cat to run', 30000);
    await waitConn(page, 'live');

    // The host beside the worker, in the header and in the list.
    checkEqual(await page.textContent('#w-host'), HOST, 'the header shows the host');
    check(await page.isVisible('#w-host'), 'the host is visible in the header');
    checkEqual(await page.$eval(`.worker-item[data-id="${id}"] .host-tag`, (e) => e.textContent), HOST, 'the list shows the host');

    // Awkward messages reach cat on the host and come back unchanged.
    for (const text of [`'; rm -rf ~ #`, '--version', '$HOME `id` $(id) "q" \\back\\slash', 'tab\there & | > < ; ünïcödé ✓']) await echo(page, text);

    // A local worker shows no host.
    const local = await api('POST', '/api/workers', { name: 'local-cat', project_path: PROJECT, command: ['cat'] });
    await waitFor(() => page.$(`.worker-item[data-id="${local.id}"]`), 'the local worker in the list');
    checkEqual(await page.$(`.worker-item[data-id="${local.id}"] .host-tag`), null, 'a local worker shows no host');

    // ---- the host goes down ----
    await page.evaluate(() => { window.notReloaded = true; });
    checkEqual(await harness('stop-sshd'), 'stopped', 'the harness stopped the sshd');
    await waitFor(async () => (await badgeOf(page)).status === 'disconnected', 'the worker to show disconnected', 30000);
    checkEqual((await badgeOf(page)).text, 'disconnected', 'the badge says disconnected');
    await waitFor(() => page.isVisible('#host-banner'), 'the banner about the host');
    const banner = await page.textContent('#host-banner');
    check(banner.startsWith(`Cannot reach ${HOST}: `) && banner.includes('retrying'), `the banner says which host, why, and that it retries (${banner})`);
    const { reason } = await api('GET', `/api/workers/${id}`);
    check(reason && banner.includes(reason), `the banner carries the status's reason (${reason})`);
    checkEqual(await page.$eval(`.worker-item[data-id="${id}"] .badge`, (b) => b.dataset.status), 'disconnected', 'the list shows it disconnected too');
    await waitFor(() => page.$('#rows .row.status.host-lost'), 'the conversation to say the host was lost');
    check(/cannot be reached/.test(await page.textContent('#composer-hint')), 'the composer says a message would be refused');
    const color = await page.$eval('#w-badge', (b) => getComputedStyle(b).borderStyle);
    checkEqual(color, 'dashed', 'disconnected has a look of its own');

    await audit(page, 'a worker whose host is down');

    // A message now is refused, and the page says so (never silently dropped).
    await sendMessage(page, 'while the host is down');
    await waitFor(async () => /cannot be reached/.test((await page.textContent('#pending')) || ''), 'the message to be refused with the reason');
    await shot(page, '41-host-disconnected');
    await page.setViewportSize({ width: 390, height: 800 });
    await page.waitForTimeout(500); // the sidebar's slide out, for the screenshot
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    check(overflow <= 1, `the page fits a phone's width (${overflow}px too wide)`);
    check(await page.isVisible('#host-banner'), 'the banner is shown at phone width');
    await shot(page, '42-host-disconnected-phone');
    await page.setViewportSize({ width: 1200, height: 900 });
    await page.click('#pending .pending-error button:has-text("Dismiss")');

    // ---- the host comes back: the status too, without a reload ----
    checkEqual(await harness('start-sshd'), 'started', 'the harness started the sshd again');
    await waitFor(async () => (await badgeOf(page)).status === 'running', 'the worker to be running again', 45000);
    check(await page.isHidden('#host-banner'), 'the banner goes when the host answers');
    check(await page.evaluate(() => window.notReloaded === true), 'the page was not reloaded');
    await waitFor(() => page.$('#rows .row.status >> text=Reached its host again'), 'the conversation to say the host is back');
    checkEqual(await page.$eval(`.worker-item[data-id="${id}"] .badge`, (b) => b.dataset.status), 'running', 'the list shows it running again');
    await echo(page, 'after the host came back');
    await shot(page, '43-host-back');

    // ---- a real Claude Code on the host: its tool call asks, is allowed, runs there ----
    const claudeEnv = process.env.WH_CLAUDE_ENV;
    if (claudeEnv) {
      const made = await api('POST', '/api/workers', {
        name: 'remote-claude', ai_cli_type: 'claude', host: HOST, project_path: PROJECT, env: JSON.parse(claudeEnv),
      });
      checkEqual(made.host, HOST, `the Claude Code worker is created on ${HOST}`);
      await openPage(page, `#/w/${made.id}`);
      await waitConn(page, 'live');
      checkEqual((await page.textContent('#w-host')).trim(), HOST, 'the header shows its host');
      check(await page.isHidden('#act-shell'), 'no Shell button: it would open a terminal on this machine, not the host');
      await sendMessage(page, 'please create the file');
      const card = await waitFor(() => page.$('#rows .approval-card button[data-decision="allow"]'), 'the approval card of the tool call made on the host', 60000);
      check((await page.textContent('#rows .approval-card')).includes('touch made-in-the-browser.txt'), 'the card names the command');
      await card.click();
      await waitFor(() => page.$('#rows .row.assistant >> text=MOCK saw the tool result'), 'the turn to go on after Allow', 60000);
      check(fs.existsSync(path.join(PROJECT, 'made-in-the-browser.txt')), 'the command ran on the host');
      await shot(page, '46-remote-claude');
      await openPage(page, `#/w/${id}`);
      await waitConn(page, 'live');
      await api('DELETE', `/api/workers/${made.id}`);
    } else {
      console.log('Claude Code is not installed (make clis): the remote browser test covers command workers only');
    }

    // ---- phone width: the list with the host ----
    await page.setViewportSize({ width: 390, height: 800 });
    await page.waitForTimeout(500);
    check(await page.isVisible('#w-host'), 'the header shows the host at phone width');
    await shot(page, '44-remote-worker-phone');
    await page.click('#back-to-list');
    await waitFor(() => page.isVisible(`.worker-item[data-id="${id}"] .host-tag`), 'the host in the list at phone width');
    await page.waitForTimeout(500);
    await shot(page, '45-worker-list-phone');
    await audit(page, 'the list with a remote worker at phone width');

    await api('DELETE', `/api/workers/${id}`);
    await api('DELETE', `/api/workers/${local.id}`);
    assertClean();
  } finally {
    await close();
  }
});
