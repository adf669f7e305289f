// Numbers and times for people.

/** A number of bytes: 1.2 MB. */
export function bytes(n) {
  if (!Number.isFinite(n)) return '';
  if (n < 1024) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  do { v /= 1024; i++; } while (v >= 1024 && i < units.length - 1);
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[i]}`;
}

/** A duration in milliseconds: 850 ms, 2.4 s, 3 min 5 s, 2 h 4 min. */
export function duration(ms) {
  if (!Number.isFinite(ms)) return '';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m - hrs * 60} min`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

/** "14:03:22" for an RFC 3339 timestamp (local time), or '' if it does not parse. */
export function clock(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
}

/** A cost in US dollars: $0.0123, $1.20; null when not a number. */
export function cost(usd) {
  if (!Number.isFinite(usd)) return null;
  if (usd === 0) return '$0';
  return usd < 1 ? `$${usd.toFixed(4)}` : `$${usd.toFixed(2)}`;
}

/** "1 worker", "2 workers": a count and its noun, singular for one. */
export function plural(n, one, many = `${one}s`) {
  return `${Number(n).toLocaleString()} ${n === 1 ? one : many}`;
}

/** A wait for people: "8 s", "1 min 30 s" (whole seconds; under a second, "1 s"). */
export function seconds(ms) {
  if (!Number.isFinite(ms)) return '';
  const s = Math.max(1, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : duration(s * 1000);
}
