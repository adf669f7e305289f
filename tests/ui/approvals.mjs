// Tool approvals in the page, against the real server and a scripted Claude Code
// (fake-claude.mjs, whose `ask …` turns ask before using a tool and wait for the answer):
//
// * the card shows where the tool call stands, with the tool, the command and the three
//   answers, labelled and reachable from the keyboard; the list and the tab title count
//   what waits; Allow goes over the WebSocket as the protocol says, and the card, on
//   every page, says who decided;
// * Deny with a message; a second viewer who answers too late is told that it was
//   already decided, and then sees the outcome;
// * a reload while a request waits shows it answerable, and earlier ones resolved;
// * an Edit's diff, coloured, monospace and scrollable, a long one cut with "Show all";
// * a request while the tab is hidden becomes a notification that opens the worker;
// * at phone width (390 px) the card fits and its buttons are large enough.
//
// Environment (besides lib.mjs's): WH_PROJECT (the worker's folder).

import fs from 'node:fs';
import path from 'node:path';
import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, api, log, required, sleep, URL } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

// Notifications are recorded as they are made; the tab can be made to look hidden.
const INIT = () => {
  window.__notes = [];
  const Real = window.Notification;
  if (Real) {
    const Wrapped = function Notification(title, options) {
      const note = new Real(title, options);
      window.__notes.push({ title, body: options && options.body, note, closed: false });
      note.addEventListener('close', () => { window.__notes.find((n) => n.note === note).closed = true; });
      return note;
    };
    Object.defineProperty(Wrapped, 'permission', { get: () => Real.permission });
    Wrapped.requestPermission = (...a) => Real.requestPermission(...a);
    Wrapped.prototype = Real.prototype;
    window.Notification = Wrapped;
  }
  window.__hidden = false;
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
  Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (window.__hidden ? 'hidden' : 'visible') });
};

/** The pending card's view. */
const pendingCard = (page) => page.$eval('#rows .approval-card[data-state="pending"]', (c) => ({
  id: c.dataset.approvalId,
  tool: c.querySelector('.tool-name').textContent,
  summary: c.querySelector('.tool-summary').textContent,
  cmd: c.querySelector('.cmd') && c.querySelector('.cmd').textContent,
  buttons: Array.from(c.querySelectorAll('button[data-decision]'), (b) => [b.textContent, b.dataset.decision, b.disabled]),
  group: c.querySelector('[role="group"]').getAttribute('aria-label'),
  label: c.querySelector('label').textContent,
  labelled: c.getAttribute('aria-labelledby') && document.getElementById(c.getAttribute('aria-labelledby')).textContent,
}));

const cardState = (page, id) => page.$eval(`#rows .approval-card[data-approval-id="${id}"]`, (c) => ({
  state: c.dataset.state,
  outcome: c.querySelector('.approval-outcome').textContent,
  late: c.querySelector('.approval-late') && c.querySelector('.approval-late').textContent,
  buttons: c.querySelectorAll('button[data-decision]').length,
})).catch(() => null);

/** The approval answers a page sends on its worker's WebSocket. */
function recordAnswers(page) {
  const sent = [];
  page.on('websocket', (ws) => {
    if (!/\/ws\/[^?]/.test(ws.url())) return;
    ws.on('framesent', (f) => {
      try {
        const msg = JSON.parse(f.payload);
        if (msg.type === 'approval') sent.push(msg);
      } catch { /* not JSON */ }
    });
  });
  return sent;
}

run(async () => {
  const { context, page, close, assertClean } = await launch({ viewport: { width: 1100, height: 900 } });
  try {
    await context.grantPermissions(['notifications'], { origin: URL });
    await context.addInitScript(INIT);
    const sentA = recordAnswers(page);
    await openPage(page);
    await waitConn(page, 'live');
    const id = await createWorker(page, { kind: 'claude', name: 'gatekeeper', path: PROJECT });

    // A second viewer, whose events from the worker can be held back (to answer late).
    const second = await context.newPage();
    const hold = { on: false, frames: [] };
    await second.routeWebSocket(/\/ws\/[^?]+\?/, (ws) => {
      const server = ws.connectToServer();
      hold.ws = ws;
      ws.onMessage((m) => server.send(m));
      server.onMessage((m) => {
        // Events (with a seq) wait while held, in order; answers to this client pass.
        if ((hold.on || hold.frames.length) && /"seq":/.test(m)) hold.frames.push(m);
        else ws.send(m);
      });
    });
    await openPage(second, `#/w/${encodeURIComponent(id)}`);
    await waitConn(second, 'live');

    // ---- 1. the card; Allow ----
    await sendMessage(page, 'ask bash first');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"]'), 'the approval card');
    const card = await pendingCard(page);
    checkEqual({ tool: card.tool, summary: card.summary, cmd: card.cmd, buttons: card.buttons },
      { tool: 'Bash', summary: 'touch approved.txt', cmd: 'touch approved.txt', buttons: [['Allow', 'allow', false], ['Allow for this session', 'allow_session', false], ['Deny', 'deny', false]] },
      'the card shows the tool, the command and the three answers');
    check(card.group.includes('Bash') && card.group.includes('touch approved.txt'), `the buttons are a labelled group (${card.group})`);
    checkEqual(card.labelled, 'Approval needed', 'the card is labelled');
    check(/denial/.test(card.label), 'the message field has a label');
    const order = await page.$$eval('#rows .row', (rows) => rows.map((r) => (r.classList.contains('approval') ? 'approval' : r.classList.contains('tool-row') ? 'tool' : null)).filter(Boolean));
    checkEqual(order.slice(-2), ['tool', 'approval'], 'the card stands right after its tool call');
    checkEqual(await page.$eval('#rows .card.tool[data-tool-id="toolu_1"] .tool-state', (e) => e.textContent), 'needs approval', 'the tool call says it waits for approval');
    await waitFor(async () => (await page.title()).startsWith('(1) '), 'the tab title to count the request');
    await waitFor(async () => (await page.$eval(`.worker-item[data-id="${id}"] .approvals-badge`, (b) => b.textContent).catch(() => null)) === '1 to approve', 'the list to mark the worker');
    await waitFor(() => second.$('#rows .approval-card[data-state="pending"]'), 'the second viewer to see the request');
    await audit(page, 'the approval card');
    await shot(page, '25-approval-pending');

    // Keyboard: Tab from the message field reaches Allow, and Enter answers.
    await page.focus(`#rows .approval-card[data-approval-id="${card.id}"] .approval-message`);
    await page.keyboard.press('Tab');
    checkEqual(await page.evaluate(() => document.activeElement.dataset.decision), 'allow', 'Allow is next from the message field');
    await page.keyboard.press('Enter');
    await waitFor(async () => (await cardState(page, card.id)).state === 'allow', 'the card to resolve');
    checkEqual(sentA, [{ type: 'approval', approval_id: card.id, decision: 'allow' }], 'Allow sent the approval message on the WebSocket');
    const allowed = await cardState(page, card.id);
    check(allowed.outcome.startsWith('Allowed once by ') && allowed.buttons === 0, `the card says who allowed it, and its buttons are gone (${JSON.stringify(allowed)})`);
    await waitFor(async () => ((await cardState(second, card.id)) || {}).state === 'allow', 'the second viewer to see it resolved');
    checkEqual((await cardState(second, card.id)).buttons, 0, 'no buttons on the other page either');
    await waitFor(() => page.$('#rows .row.assistant >> text=I created approved.txt.'), 'the turn to go on');
    check(fs.existsSync(path.join(PROJECT, 'approved.txt')), 'the command ran after Allow');
    await waitFor(async () => !(await page.title()).startsWith('('), 'the title to stop counting');
    await waitFor(async () => !(await page.$(`.worker-item[data-id="${id}"] .approvals-badge`)), 'the list mark to go');

    // ---- 2. Deny with a message; the second viewer answers too late ----
    await sendMessage(page, 'ask bash second');
    await waitFor(() => second.$('#rows .approval-card[data-state="pending"]'), 'the second request on the second page');
    const second2 = await pendingCard(second);
    hold.on = true;
    await page.fill(`#rows .approval-card[data-approval-id="${second2.id}"] .approval-message`, 'not today');
    await page.click(`#rows .approval-card[data-approval-id="${second2.id}"] button[data-decision="deny"]`);
    await waitFor(async () => (await cardState(page, second2.id)).state === 'deny', 'the first page to see its denial');
    checkEqual(sentA.at(-1), { type: 'approval', approval_id: second2.id, decision: 'deny', message: 'not today' }, 'Deny sent its message');
    check((await cardState(page, second2.id)).outcome.includes('“not today”'), 'the card shows the message');
    checkEqual((await cardState(second, second2.id)).state, 'pending', 'the second page has not heard yet');
    await second.click(`#rows .approval-card[data-approval-id="${second2.id}"] button[data-decision="allow"]`);
    await waitFor(async () => ((await cardState(second, second2.id)) || {}).late, 'the late answer to be refused');
    const late = await cardState(second, second2.id);
    check(/^Already decided \(deny by .+\): your answer was not used\.$/.test(late.late) && late.buttons === 0, `the second page says it was already decided (${JSON.stringify(late)})`);
    await shot(second, '26-approval-already-decided');
    hold.on = false;
    for (const m of hold.frames.splice(0)) hold.ws.send(m);
    await waitFor(async () => ((await cardState(second, second2.id)) || {}).state === 'deny', 'the second page to hear the outcome once its events come');
    check((await cardState(second, second2.id)).late, 'and it still says its answer came too late');
    await waitFor(() => page.$('#rows .row.assistant >> text=I did not run it: not today'), 'the agent to hear the denial');
    check(!fs.readFileSync(path.join(PROJECT, 'approved.txt'), 'utf8').includes('second'), 'the denied command did not run');
    await second.close();

    // ---- 3. a reload while a request waits ----
    await sendMessage(page, 'ask bash third');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"]'), 'the third request');
    const third = await pendingCard(page);
    await page.reload();
    await waitConn(page, 'live');
    await waitFor(() => page.$(`#rows .approval-card[data-approval-id="${third.id}"]`), 'the card after the reload');
    checkEqual((await pendingCard(page)).buttons.map((b) => b[2]), [false, false, false], 'after a reload the waiting request is answerable');
    checkEqual(await page.$$eval('#rows .approval-card', (cs) => cs.map((c) => [c.dataset.state, c.querySelectorAll('button[data-decision]').length])),
      [['allow', 0], ['deny', 0], ['pending', 3]], 'and the earlier ones are resolved');
    await waitFor(async () => (await page.title()).startsWith('(1) '), 'the title to count it after the reload');
    await page.click(`#rows .approval-card[data-approval-id="${third.id}"] button[data-decision="allow_session"]`);
    await waitFor(async () => (await cardState(page, third.id)).state === 'allow_session', 'allowed for the session');
    check((await cardState(page, third.id)).outcome.startsWith('Allowed for this session by '), 'the card says so');
    checkEqual(sentA.at(-1), { type: 'approval', approval_id: third.id, decision: 'allow_session' }, 'Allow for this session sent allow_session');
    await waitFor(async () => (await page.$$('#rows .row.result')).length >= 3, 'the third turn to end');

    // ---- 4. an Edit's diff ----
    await sendMessage(page, 'ask edit config');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"][data-tool="Edit"]'), 'the edit request');
    const diff = await page.$eval('#rows .approval-card[data-state="pending"]', (c) => {
      const box = c.querySelector('.approval-diff');
      const style = (sel) => { const el = box.querySelector(sel); const s = getComputedStyle(el); return { color: s.color, background: s.backgroundColor }; };
      return {
        path: c.querySelector('.edit-path').textContent,
        lines: Array.from(box.children, (l) => [l.className, l.textContent]),
        mono: getComputedStyle(box).fontFamily,
        overflow: getComputedStyle(box).overflowY,
        add: style('.add'),
        del: style('.del'),
      };
    });
    checkEqual(diff.path, path.join(PROJECT, 'src/config.py'), 'the edit shows its file');
    checkEqual(diff.lines.filter(([c]) => c === 'add' || c === 'del'), [['del', '-DEBUG = True'], ['del', '-PORT = 80'], ['add', '+DEBUG = False'], ['add', '+PORT = 8080']], 'the diff lines, added and removed');
    check(diff.lines.some(([c]) => c === 'hunk') && diff.lines.some(([c]) => c === 'hdr'), 'hunk and file headers are marked');
    check(/mono/i.test(diff.mono) && diff.overflow === 'auto', `monospace and scrollable (${diff.mono}, ${diff.overflow})`);
    check(diff.add.color !== diff.del.color && diff.add.background !== diff.del.background, 'added and removed lines are coloured apart');
    await audit(page, 'an edit approval');
    await shot(page, '27-approval-edit-diff');
    await page.click('#rows .approval-card[data-state="pending"] button[data-decision="deny"]');
    await waitFor(() => page.$('#rows .row.assistant >> text=Not edited.'), 'the edit turn to end');

    await sendMessage(page, 'ask big edit');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"][data-tool="Edit"]'), 'the big edit request');
    const big = () => page.$eval('#rows .approval-card[data-state="pending"]', (c) => ({
      shown: c.querySelectorAll('.approval-diff > span').length,
      more: c.querySelector('.collapse-note button') && c.querySelector('.collapse-note button').textContent,
    }));
    const cut = await big();
    check(cut.shown === 40 && /^Show all \d+ lines$/.test(cut.more), `a large diff is cut (${JSON.stringify(cut)})`);
    await page.click('#rows .approval-card[data-state="pending"] .collapse-note button');
    const whole = await big();
    check(whole.shown > 300 && whole.more === 'Show less', `"Show all" shows every line (${JSON.stringify(whole)})`);
    await page.click('#rows .approval-card[data-state="pending"] button[data-decision="deny"]');
    await waitFor(async () => (await page.$$('#rows .row.assistant >> text=Not edited.')).length === 2, 'the big edit turn to end');

    // ---- 5. a request while the tab is hidden: a notification ----
    await page.evaluate(() => { window.location.hash = '#/'; });
    await page.evaluate(() => { window.__hidden = true; document.dispatchEvent(new Event('visibilitychange')); });
    // (Bash's `touch` is allowed for the session now: an edit still asks.)
    await api('POST', `/api/workers/${encodeURIComponent(id)}/messages`, { content: 'ask edit while away' });
    const note = await waitFor(() => page.evaluate(() => window.__notes.length && { title: window.__notes[0].title, body: window.__notes[0].body }), 'a notification', 15000)
      .catch(async (err) => { log(await page.evaluate(() => [document.title, document.hidden, Notification.permission])); throw err; });
    checkEqual(note, { title: 'gatekeeper waits for your approval', body: `Edit: edit ${path.join(PROJECT, 'src/config.py')}` }, 'the notification says which worker waits and for what');
    await page.evaluate(() => { window.__hidden = false; window.__notes[0].note.dispatchEvent(new Event('click')); });
    await waitFor(async () => (await page.evaluate(() => window.location.hash)) === `#/w/${encodeURIComponent(id)}`, 'clicking the notification to open the worker');
    await waitFor(() => page.$('#rows .approval-card[data-state="pending"]'), 'the waiting card in the opened worker');
    log('notification shown and followed');

    // ---- 6. phone width ----
    await page.setViewportSize({ width: 390, height: 844 });
    await sleep(400); // the sidebar slides away at this width
    await page.$eval('#rows .approval-card[data-state="pending"]', (c) => c.scrollIntoView({ block: 'center' }));
    await shot(page, '28-approval-phone-390');
    const phone = await page.evaluate(() => {
      const c = document.querySelector('#rows .approval-card[data-state="pending"]');
      const r = c.getBoundingClientRect();
      return {
        overflow: document.documentElement.scrollWidth - window.innerWidth,
        conv: (() => { const v = document.getElementById('conv'); return v.scrollWidth - v.clientWidth; })(),
        card: [Math.round(r.left), Math.round(r.right)],
        buttons: Array.from(c.querySelectorAll('button[data-decision]'), (b) => { const br = b.getBoundingClientRect(); return [b.textContent, Math.round(br.left), Math.round(br.right), Math.round(br.height)]; }),
      };
    });
    check(phone.overflow <= 0 && phone.conv <= 0, `nothing overflows sideways at 390 px (${JSON.stringify(phone)})`);
    check(phone.card[0] >= 0 && phone.card[1] <= 390, `the card fits (${phone.card})`);
    for (const [label, left, right, height] of phone.buttons) check(left >= 0 && right <= 390 && height >= 44, `${label} is on screen and large enough (${left}..${right}, ${height} px high)`);
    await page.click('#rows .approval-card[data-state="pending"] button[data-decision="deny"]');
    await waitFor(async () => !(await page.$('#rows .approval-card[data-state="pending"]')), 'the phone answer');
    await waitFor(() => page.evaluate(() => window.__notes[0].closed), 'the answered request to close its notification').catch(() => log('(the notification was not reported closed)'));
    assertClean();
  } finally {
    await close();
  }
});
