// A server with a token: the page asks for it in a small form (never putting it in the
// address or in storage), the server keeps it in an HttpOnly cookie, and everything
// works afterwards, WebSocket included. `/?token=T` trades the token for the cookie.

import { URL, TOKEN, audit, launch, run, check, checkEqual, waitFor, shot, waitConn, api } from './lib.mjs';

async function noTokenAnywhere(page) {
  const seen = await page.evaluate((token) => {
    const dump = (s) => JSON.stringify(Object.fromEntries(Array.from({ length: s.length }, (_, i) => [s.key(i), s.getItem(s.key(i))])));
    return {
      url: window.location.href.includes(token),
      local: dump(localStorage).includes(token),
      session: dump(sessionStorage).includes(token),
      cookie: document.cookie.includes(token),
      history: window.history.length,
    };
  }, TOKEN);
  checkEqual({ url: seen.url, local: seen.local, session: seen.session, cookie: seen.cookie },
    { url: false, local: false, session: false, cookie: false }, 'the token is in neither the address, the storage nor a script-readable cookie');
}

run(async () => {
  check(TOKEN, 'the server runs with a token');
  // The 401 answers before signing in are expected, the refused /ws upgrade too.
  const { context, page, close, assertClean } = await launch({ allowConsole: [/status of 401/, /Failed to load resource/, /WebSocket connection to .* failed/] });
  try {
    const w = await api('POST', '/api/workers', { name: 'behind-a-token', project_path: '/tmp', ai_cli_type: 'command', command: ['cat'] });
    await page.goto(`${URL}/`);
    await page.waitForSelector('#token-dialog[open]');
    await shot(page, '18-sign-in');
    await audit(page, 'the sign-in form');
    await page.fill('#token-input', 'not-the-right-token-at-all');
    await page.click('#token-form button[type="submit"]');
    await waitFor(async () => (await page.textContent('#token-error')).includes('not right'), 'a wrong token to be refused');
    await page.fill('#token-input', TOKEN);
    await Promise.all([page.waitForNavigation(), page.click('#token-form button[type="submit"]')]);
    await waitFor(async () => !(await page.$('#token-dialog[open]')), 'the sign-in form to go');
    await waitFor(() => page.$(`.worker-item[data-id="${w.id}"]`), 'the workers after signing in');
    const cookies = await context.cookies(URL);
    const cookie = cookies.find((c) => c.name === 'workerhub_token');
    check(cookie && cookie.httpOnly, 'the server set an HttpOnly cookie');
    await page.click(`.worker-item[data-id="${w.id}"]`);
    await waitConn(page, 'live');
    await noTokenAnywhere(page);

    // The address the server prints: /?token=T, traded for the cookie.
    await context.clearCookies();
    const fresh = await context.newPage();
    await fresh.goto(`${URL}/?token=${encodeURIComponent(TOKEN)}`);
    checkEqual(new globalThis.URL(fresh.url()).search, '', 'the token is gone from the address after the redirect');
    await waitFor(() => fresh.$(`.worker-item[data-id="${w.id}"]`), 'the workers after /?token=');
    check(!(await fresh.$('#token-dialog[open]')), 'no sign-in form with the cookie');
    await noTokenAnywhere(fresh);
    assertClean();
  } finally {
    await close();
  }
});
