// A terminal worker in the browser (xterm.js): type a command and see its output, the
// terminal follows the window's size (`stty size`), a full-screen program (python3
// curses) answers keys, a reload shows the same screen at once, a second page shows it
// too and both can type; read-only pages cannot.

import fs from 'node:fs';
import path from 'node:path';
import { URL, openPage, launch, run, log, check, checkEqual, waitFor, shot, waitConn, api, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

// The same program as tests/terminals.rs runs.
const CURSES_DEMO = fs.readFileSync(path.join(import.meta.dirname, '..', 'fixtures', 'terminal', 'curses_demo.py'), 'utf8');

const term = (page) => page.evaluate(() => window.workerhub.terminal());

async function screenHas(page, text, what = `the terminal to show ${JSON.stringify(text)}`) {
  return waitFor(async () => {
    const t = await term(page);
    return t.text.includes(text) ? t : null;
  }, what, 20000);
}

async function typeLine(page, line) {
  await page.click('#term');
  await page.keyboard.type(line);
  await page.keyboard.press('Enter');
}

run(async () => {
  fs.writeFileSync(path.join(PROJECT, 'demo.py'), CURSES_DEMO);
  const { context, page, close, assertClean } = await launch({ viewport: { width: 1100, height: 700 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const created = await api('POST', '/api/workers', {
      name: 'shell', command: ['bash', '--norc', '--noprofile', '-i'], terminal: true, project_path: PROJECT,
    });
    const id = created.id;
    await page.goto(`${URL}/#/w/${id}`);
    await waitFor(() => page.$('#term .xterm'), 'xterm.js to draw the terminal');
    check(await page.isHidden('#composer'), 'a terminal worker has no message composer');

    // Typing: a command and its output.
    await typeLine(page, "PS1='$ '; echo hello-$((40+2)); tty");
    const first = await screenHas(page, 'hello-42');
    check(first.text.includes('/dev/pts/'), `tty names a terminal:\n${first.text}`);

    // Job control: a job in the background, listed, brought to the foreground, and
    // stopped with a Ctrl-C typed here (a byte to the terminal, not a signal from us).
    await typeLine(page, 'sleep 300 & jobs');
    await screenHas(page, 'Running', 'jobs to list the background job');
    await typeLine(page, 'fg');
    // fg names the job on a line of its own (the lines typed hold more than that).
    await waitFor(async () => ((await term(page)).text.split('\n').some((l) => l.trim() === 'sleep 300') ? true : null), 'fg to bring it to the foreground', 20000);
    await page.keyboard.press('Control+C');
    await typeLine(page, 'echo after-$((6*7)) status-$?; jobs; echo jobs-$((1+1))-done');
    const jobs = await screenHas(page, 'jobs-2-done', 'the shell to answer after Ctrl-C');
    check(/after-42 status-130/.test(jobs.text), `Ctrl-C ended the foreground job (status 130):\n${jobs.text}`);

    // The terminal has this window's size, and follows it.
    await waitFor(async () => {
      const t = await term(page);
      return t.size && t.window && t.size.cols === t.window.cols && t.size.rows === t.window.rows ? t : null;
    }, 'the terminal to take the window size');
    await page.setViewportSize({ width: 800, height: 520 });
    const sized = await waitFor(async () => {
      const t = await term(page);
      return t.size && t.window && t.size.cols === t.window.cols && t.size.rows === t.window.rows && t.size.cols < 100 ? t : null;
    }, 'the terminal to follow the smaller window');
    await typeLine(page, 'clear; stty size');
    await screenHas(page, `${sized.size.rows} ${sized.size.cols}`, 'stty size to report the new size');
    log('resized to', sized.size);

    // A full-screen program: draws, answers keys.
    await typeLine(page, 'python3 demo.py');
    await screenHas(page, 'press a key');
    await page.keyboard.press('k');
    const drawn = await screenHas(page, 'got key: k');
    await shot(page, 'terminal-curses');

    // A reload shows the same screen at once (from the server's snapshot).
    await page.reload();
    await waitFor(() => page.$('#term .xterm'), 'xterm.js after the reload');
    const reloaded = await screenHas(page, 'got key: k', 'the same screen after a reload');
    checkEqual(reloaded.text, drawn.text, 'the screen after the reload is the screen before it');

    // A second page shows it at once, and both can type.
    const second = await context.newPage();
    await second.setViewportSize({ width: 800, height: 520 });
    await openPage(second, `#/w/${id}`);
    const seen = await screenHas(second, 'got key: k', 'the second page to show the screen');
    checkEqual(seen.text, reloaded.text, 'the second page shows the same screen');
    await second.click('#term');
    await second.keyboard.press('j');
    await screenHas(second, 'got key: j');
    await screenHas(page, 'got key: j', 'the first page to see what the second typed');
    await page.click('#term');
    await page.keyboard.press('m');
    await screenHas(second, 'got key: m', 'the second page to see what the first typed');

    // Read-only: this page cannot type.
    await second.check('#term-readonly');
    await second.click('#term');
    await second.keyboard.press('z');
    await new Promise((r) => setTimeout(r, 700));
    check(!(await term(page)).text.includes('got key: z'), 'a read-only page does not type');
    await second.uncheck('#term-readonly');

    await page.click('#term');
    await page.keyboard.press('q');
    await screenHas(page, 'curses demo ended');
    await screenHas(second, 'curses demo ended');
    await shot(page, 'terminal-after');
    await second.close();

    // At phone width: the key row, with a sticky Ctrl (Ctrl, then c: interrupts sleep).
    await page.setViewportSize({ width: 390, height: 760 });
    check(await page.isVisible('#term-keys'), 'the key row shows at phone width');
    await typeLine(page, 'clear; sleep 30; echo not-interrupted');
    await page.click('#term-keys button[data-key="ctrl"]');
    checkEqual(await page.getAttribute('#term-keys button[data-key="ctrl"]', 'aria-pressed'), 'true', 'Ctrl is held for the next key');
    await page.keyboard.press('c');
    await typeLine(page, 'echo phone-$((2*21))');
    const phone = await screenHas(page, 'phone-42');
    check(!phone.text.split('\n').some((l) => l.trim() === 'not-interrupted'), `Ctrl from the key row interrupted sleep:\n${phone.text}`);
    await shot(page, 'terminal-phone');

    // The create form makes a terminal worker of any command.
    await page.setViewportSize({ width: 1100, height: 700 });
    await page.click('#new-worker');
    await page.waitForSelector('#create-dialog[open]');
    await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
    await page.selectOption('#cw-kind', 'command');
    await page.fill('#cw-name', 'from-the-form');
    await page.fill('#cw-path', PROJECT);
    await page.fill('#cw-opt-command', 'sh -c "tty; exec cat"');
    if (!(await page.isVisible('#cw-opt-terminal'))) await page.click('#cw-more summary');
    await page.check('#cw-opt-terminal');
    await page.click('#cw-submit');
    await page.waitForSelector('#create-dialog:not([open])', { state: 'attached' });
    await waitFor(() => page.$('#term .xterm'), 'the new worker to open in a terminal');
    await screenHas(page, '/dev/pts/', 'the form-made worker to have a terminal');
    assertClean();
  } finally {
    await close();
  }
});
