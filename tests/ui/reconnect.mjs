// Cut the WebSocket by restarting the server on the same port and data folder: the
// indicator shows it, the page reconnects by itself (with back-off and ?since=), and
// the events produced while it was away appear, each once. Meanwhile the worker list,
// whose /ws is down too, is fetched over HTTP once per reconnect attempt, not polled.

import { URL, openPage, audit, launch, run, log, check, checkEqual, waitFor, shot, createWorker, sendMessage, waitConn, pageState, api, history, harness, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

run(async () => {
  // While the server is down, the page's requests fail: expected here.
  const { page, close, assertClean } = await launch({
    allowConsole: [/ERR_CONNECTION_REFUSED/, /WebSocket connection to .* failed/, /Failed to load resource/, /ERR_CONNECTION_RESET/, /ERR_EMPTY_RESPONSE/],
  });
  // When the page asks for the whole list over HTTP.
  const listFetches = [];
  page.on('request', (r) => {
    if (r.method() === 'GET' && new globalThis.URL(r.url()).pathname === '/api/workers') listFetches.push(Date.now());
  });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const id = await createWorker(page, { kind: 'command', name: 'survivor', path: PROJECT, options: { command: `sh -c 'while IFS= read -r l; do echo "echo: $l"; done'` } });
    await waitConn(page, 'live');
    await sendMessage(page, 'before the restart');
    await waitFor(() => page.$('#rows .row.out >> text=echo: before the restart'), 'the first echo');

    await harness('stop');
    await waitConn(page, 'reconnecting', 15000);
    const text = await page.textContent('#conn-text');
    check(/reconnecting/i.test(text), `the indicator says it is reconnecting (${text})`);
    check(await page.isVisible('#conn-retry'), 'a "Retry now" control is offered');
    // Wait for a few failed attempts, until the back-off leaves a few seconds before the
    // next one: the events below are then made while the page is away.
    await waitFor(async () => {
      const m = /reconnecting in (\d+) s/.exec(await page.textContent('#conn-text'));
      return m && Number(m[1]) >= 3;
    }, 'the back-off to grow', 30000, 50);
    await shot(page, '12-reconnecting');
    check(await page.isVisible('#conn-banner'), 'a banner says the view may be out of date');
    check(await page.$eval('#w-badge', (b) => b.classList.contains('stale')), 'the status badge is marked as last known');
    await audit(page, 'the page while reconnecting');

    // The list's connection backs off like the worker's: one fetch per attempt, further
    // and further apart.
    const gaps = listFetches.slice(1).map((t, i) => t - listFetches[i]);
    log('list fetches while the server was down, ms apart:', gaps.join(', '));
    check(listFetches.length >= 2, `the list is fetched over HTTP while /ws is down (${listFetches.length} times)`);
    check(gaps.every((gap, i) => i === 0 || gap > gaps[i - 1]), `the fetches back off (${gaps.join(', ')} ms apart)`);

    await harness('start');
    // Produce events while the page is still away: start the worker's process again
    // and send it lines over HTTP.
    const stateThen = await page.getAttribute('#conn', 'data-state');
    const w = await api('GET', `/api/workers/${id}`);
    log('after the restart the worker is', w.status);
    if (w.status !== 'running') await api('POST', `/api/workers/${id}/start`, {});
    await waitFor(async () => (await api('GET', `/api/workers/${id}`)).status === 'running', 'the worker to run again');
    for (let i = 1; i <= 3; i++) await api('POST', `/api/workers/${id}/messages`, { content: `after the restart ${i}` });
    const producedAt = await page.getAttribute('#conn', 'data-state');
    log('indicator when the restart happened:', stateThen, 'when the events were produced:', producedAt);
    check(producedAt !== 'live', 'the events were produced while the page was disconnected');

    await waitConn(page, 'live', 30000);
    check(await page.isHidden('#conn-banner'), 'the banner goes when connected again');
    for (let i = 1; i <= 3; i++) {
      await waitFor(() => page.$(`#rows .row.out >> text=echo: after the restart ${i}`), `echo ${i} after the reconnect`);
    }
    const server = (await history(id)).map((e) => e.seq);
    await waitFor(async () => (await pageState(page)).lastSeq === server[server.length - 1], 'the page to have every event');
    const st = await pageState(page);
    checkEqual(st.seqs, server, 'the page holds every event once, in order, across the restart');
    checkEqual(st.domSeqs, server, 'the page shows every event once, in order, across the restart');
    const before = await page.$$eval('#rows .row.out', (els) => els.filter((e) => e.textContent === 'echo: before the restart').length);
    checkEqual(before, 1, 'the line from before the restart is shown once');

    // And it is live again: a message from the page goes through.
    await sendMessage(page, 'live again');
    await waitFor(() => page.$('#rows .row.out >> text=echo: live again'), 'the echo after the reconnect');
    await shot(page, '13-reconnected');

    // The list's connection is back too.
    await page.goto(`${URL}/#/`);
    await waitConn(page, 'live');
    checkEqual(await page.textContent('#conn-text'), 'Connected', 'the list is connected again');
    await waitFor(() => page.$(`.worker-item[data-id="${id}"]`), 'the worker in the list');
    assertClean();
  } finally {
    await close();
  }
});
