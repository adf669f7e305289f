// The new-worker form shows what the server lists in GET /api/ai-clis, and nothing
// else: each kind as its label and version, and for every kind that can run one
// labelled field per option (a choice as a select of its values after an empty
// default, required options required). A worker made with it gets what was typed in
// the shapes of the POST /api/workers body (a list, an argv, an env object).
//
// The server runs fake-claude.mjs as Claude Code, so that a kind with choice options
// is usable. Environment (besides lib.mjs's): WH_PROJECT (a project folder).

import { openPage, audit, launch, run, check, checkEqual, waitFor, shot, waitConn, api, required } from './lib.mjs';

const PROJECT = required('WH_PROJECT');

/** The option fields the form shows, in no particular order. */
const shownFields = (page) => page.$$eval('#cw-options .field, #cw-more-options .field', (els) => els.map((el) => {
  const input = el.querySelector('input, select, textarea');
  const label = el.querySelector('label');
  return {
    id: input.id,
    label: label.textContent,
    for: label.htmlFor,
    tag: input.tagName.toLowerCase(),
    required: input.required,
    values: input.tagName === 'SELECT' ? Array.from(input.options, (o) => o.value) : null,
  };
}).sort((a, b) => a.id.localeCompare(b.id)));

/** The fields the server's description of a kind calls for. */
const expectedFields = (kind) => kind.options.map((o) => ({
  id: `cw-opt-${o.name}`,
  label: o.label,
  for: `cw-opt-${o.name}`,
  tag: o.type === 'choice' ? 'select' : o.type === 'env' ? 'textarea' : 'input',
  required: o.required,
  values: o.type === 'choice' ? ['', ...o.values] : null,
})).sort((a, b) => a.id.localeCompare(b.id));

async function openForm(page) {
  await page.click('#new-worker');
  await page.waitForSelector('#create-dialog[open]');
  await waitFor(() => page.$eval('#cw-kind', (s) => !s.disabled && s.options.length > 0), 'the kinds in the form');
}

run(async () => {
  const { page, close, assertClean } = await launch({ viewport: { width: 1100, height: 1000 } });
  try {
    await openPage(page);
    await waitConn(page, 'live');
    const kinds = (await api('GET', '/api/ai-clis')).ai_clis;
    await openForm(page);

    // Every kind the server lists, as its label and the version of its --version line.
    const offered = await page.$$eval('#cw-kind option', (os) => os.map((o) => ({ name: o.value, text: o.textContent, disabled: o.disabled })));
    checkEqual(offered.map((k) => k.name).sort(), kinds.map((k) => k.name).sort(), 'every kind the server lists is offered');
    const claudeText = offered.find((k) => k.name === 'claude').text;
    check(claudeText === 'Claude Code 0.0.1' || claudeText.startsWith('Claude Code 0.0.1 — '), `a kind reads as its label and the version of its --version line (${claudeText})`);
    checkEqual(offered.find((k) => k.name === 'command').text, 'Command', 'command reads as its label');
    for (const k of offered.filter((o) => o.disabled)) check(k.text.includes('— unavailable: '), `an unavailable kind says why (${k.text})`);
    checkEqual(offered.filter((k) => k.disabled).map((k) => k.name).sort(), kinds.filter((k) => !k.usable).map((k) => k.name).sort(), 'the kinds that cannot run here are disabled');

    // For each kind that can run: its options, as the server describes them, and no more.
    for (const kind of kinds.filter((k) => k.usable)) {
      await page.selectOption('#cw-kind', kind.name);
      checkEqual(await shownFields(page), expectedFields(kind), `the fields of ${kind.name}`);
    }
    await page.selectOption('#cw-kind', 'command');
    const command = await page.$eval('#cw-opt-command', (el) => ({ required: el.required, label: document.querySelector('label[for="cw-opt-command"]').textContent }));
    checkEqual(command, { required: true, label: 'Command' }, 'the command kind asks for a required Command');
    check(!(await page.$('#cw-opt-model')), 'the command kind has no model field');
    await page.selectOption('#cw-kind', 'claude');
    const claude = kinds.find((k) => k.name === 'claude');
    const mode = claude.options.find((o) => o.name === 'mode');
    checkEqual(await page.$$eval('#cw-opt-mode option', (os) => os.map((o) => o.value)), ['', ...mode.values], 'a choice offers its values after an empty default');
    check(await page.$('#cw-opt-model'), 'an AI kind has a model field');

    await page.click('#cw-more summary');
    await shot(page, '22-create-form-from-the-server');
    await audit(page, 'the create form built from the server');

    // What was typed stays when the kind changes, where the other kind has the option.
    await page.fill('#cw-opt-env', 'KEPT=yes');
    await page.selectOption('#cw-kind', 'command');
    checkEqual(await page.inputValue('#cw-opt-env'), 'KEPT=yes', 'the environment is kept across kinds');

    // A required option left empty is refused in the form.
    await page.fill('#cw-name', 'no-command');
    await page.fill('#cw-path', PROJECT);
    await page.click('#cw-submit');
    await waitFor(async () => (await page.textContent('#cw-error')) === 'Command is required.', 'the form to ask for the command');
    check(await page.$('#create-dialog[open]'), 'the form stays open');

    // A worker made with the form gets each option in the body's shape.
    await page.selectOption('#cw-kind', 'claude');
    await page.fill('#cw-name', 'from-the-form');
    await page.fill('#cw-opt-model', 'fake-model');
    await page.selectOption('#cw-opt-permission_mode', 'plan');
    await page.fill('#cw-opt-allowed_tools', 'Bash, Read  Edit');
    await page.fill('#cw-opt-extra_args', '--verbose "two words"');
    await page.fill('#cw-opt-env', 'FOO=bar\n# a comment\nEMPTY=');
    await page.click('#cw-submit');
    await page.waitForSelector('#create-dialog:not([open])', { state: 'attached' });
    const id = await waitFor(async () => (/^#\/w\/(.+)$/.exec(await page.evaluate(() => window.location.hash)) || [])[1], 'the new worker to open');
    const spec = await api('GET', `/api/workers/${id}`);
    checkEqual({ ai_cli_type: spec.ai_cli_type, name: spec.name, model: spec.model, permission_mode: spec.permission_mode, mode: spec.mode, allowed_tools: spec.allowed_tools, extra_args: spec.extra_args, env: spec.env },
      { ai_cli_type: 'claude', name: 'from-the-form', model: 'fake-model', permission_mode: 'plan', mode: null, allowed_tools: ['Bash', 'Read', 'Edit'], extra_args: ['--verbose', 'two words'], env: { EMPTY: '', FOO: 'bar' } },
      'the worker has what the form said, and the choice left at its default is not sent');

    // Next time the options start empty; the kind and folder are remembered, across a
    // reload too.
    await openForm(page);
    checkEqual([await page.inputValue('#cw-name'), await page.inputValue('#cw-opt-model'), await page.inputValue('#cw-opt-env')], ['', '', ''], 'the fields start empty again');
    await page.click('#cw-cancel');
    await page.reload();
    await waitConn(page, 'live');
    await openForm(page);
    checkEqual([await page.inputValue('#cw-kind'), await page.inputValue('#cw-path')], ['claude', PROJECT], 'the last kind and folder are offered again');
    assertClean();
  } finally {
    await close();
  }
});
