// The kinds of worker this server offers, as GET /api/ai-clis lists them: each with its
// label and version, whether it can run here (and why not), and whether it has a key
// for its model API; also the default kind and the project roots. Asked for each time a
// form opens, so that a CLI installed meanwhile shows.

import { get } from './api.js';

/** The server's answer: `{ai_clis: [...], default, project_roots}`. Throws when it
 * cannot be had. */
export async function loadKinds() {
  const data = await get('/api/ai-clis');
  return {
    kinds: Array.isArray(data.ai_clis) ? data.ai_clis : [],
    defaultKind: data.default || null,
    roots: Array.isArray(data.project_roots) ? data.project_roots : [],
  };
}

/** "Claude Code 2.1.197": the label and the version number (the server's clean one, or
 * the number in its --version line). */
export function kindLabel(k) {
  let text = k.label || k.name;
  const version = k.version || (k.version_text && (/\d+(?:\.\d+)+/.exec(k.version_text) || [])[0]);
  if (version) text += ` ${version}`;
  return text;
}

/** What a kind lacks to run a turn, in a few words, or null: "no API key found". */
export function credentialProblem(k) {
  const state = k.credentials && typeof k.credentials === 'object' ? k.credentials.state : k.credentials;
  if (state === 'missing') return 'no API key found';
  if (state === 'rejected') return 'its API key was refused';
  return null;
}

/** The option text of a kind in a picker. */
export function kindOptionText(k) {
  let text = kindLabel(k);
  if (!k.usable) text += ` — unavailable: ${k.reason || 'not installed'}`;
  else if (credentialProblem(k)) text += ` — ${credentialProblem(k)}`;
  return text;
}
