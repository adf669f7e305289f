// The machines workers may run on besides this one (`--hosts FILE` on the server), as
// GET /api/hosts lists them, and their checks (POST /api/hosts/{name}/check: over ssh,
// up to 20 s).

import { get, post, enc } from './api.js';

/** The hosts a worker can be created on (an entry that cannot be used is `invalid`). */
export async function loadHosts() {
  const data = await get('/api/hosts');
  return (Array.isArray(data && data.hosts) ? data.hosts : []).filter((x) => x && x.name && x.state !== 'invalid');
}

/** Checks a host now; resolves to its status (reachable or not, with why). */
export function checkHost(name) {
  return post(`/api/hosts/${enc(name)}/check`, {}, { timeoutMs: 30000 });
}

/** A host's state in a few words: "reachable, 12 ms", "unreachable", "not checked yet". */
export function hostState(status) {
  switch (status.state) {
    case 'reachable': return Number.isFinite(status.latency_ms) ? `reachable, ${status.latency_ms} ms` : 'reachable';
    case 'unreachable': return 'unreachable';
    case 'unknown': return 'not checked yet';
    default: return String(status.state || 'unknown');
  }
}

/** What a check found, in one line: "Reachable in 12 ms · Linux … · claude 2.1, codex not found". */
export function describeCheck(status) {
  if (status.state !== 'reachable') return `Cannot reach ${status.name}${status.error ? `: ${status.error}` : ''}`;
  const bits = [Number.isFinite(status.latency_ms) ? `Reachable in ${status.latency_ms} ms` : 'Reachable'];
  if (status.os) bits.push(status.os);
  const clis = Object.entries(status.clis || {});
  if (clis.length) {
    const found = clis.filter(([, v]) => v).map(([k, v]) => `${k} ${v}`);
    const missing = clis.filter(([, v]) => !v).map(([k]) => k);
    bits.push(found.length ? found.join(', ') : 'no AI CLI found');
    if (found.length && missing.length) bits.push(`not found: ${missing.join(', ')}`);
  }
  return bits.join(' · ');
}
