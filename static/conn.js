// The connection indicator in the top bar, and the banner under the worker's header
// that says what a lost connection means for what is shown. With a worker open they
// follow its stream; otherwise the page's connection for the worker list (/ws).

import { $ } from './dom.js';

let countdownTimer = null;

/**
 * @param {object} view inWorker (a worker is open), stream ({state, info} of the
 *   connection shown), seq (the last event of the open worker the page holds)
 */
export function renderConn(view) {
  const el = $('conn');
  const text = $('conn-text');
  const retry = $('conn-retry');
  clearInterval(countdownTimer);
  countdownTimer = null;
  const { state: st, info } = view.stream;
  let s;
  let label;
  let showRetry = false;
  switch (st) {
    case 'live':
      s = 'live';
      label = view.inWorker ? 'Live' : 'Connected';
      break;
    case 'connecting':
      s = 'connecting';
      label = 'Connecting…';
      break;
    case 'reconnecting': {
      s = 'reconnecting';
      showRetry = true;
      const why = info.code === 1001 ? 'Server went away' : info.code === 1013 ? 'Too slow, catching up' : 'Disconnected';
      if (info.connecting) {
        label = `${why} — reconnecting…`;
      } else {
        const tick = () => {
          const left = Math.max(0, Math.ceil(((info.retryAt || 0) - Date.now()) / 1000));
          text.textContent = `${why} — reconnecting in ${left} s`;
        };
        label = null;
        tick();
        countdownTimer = setInterval(tick, 500);
      }
      break;
    }
    case 'gone':
      s = 'offline';
      label = info.deleted ? 'Worker deleted' : 'This worker no longer exists';
      break;
    case 'unauthorized':
      s = 'offline';
      label = 'Sign-in needed';
      break;
    default:
      s = 'connecting';
      label = st;
  }
  el.dataset.state = s;
  if (label !== null) text.textContent = label;
  retry.hidden = !showRetry;
  renderBanner(view);
}

function renderBanner({ inWorker, stream, seq }) {
  const banner = $('conn-banner');
  const badgeEl = $('w-badge');
  const st = stream.state;
  let text = null;
  if (inWorker && st === 'reconnecting') {
    text = `Connection lost: what is shown may be out of date. The page reconnects by itself and catches up from event ${seq}; nothing is lost.`;
  } else if (inWorker && st === 'gone') {
    text = stream.info.deleted ? 'This worker was deleted: what is shown is its history up to then.' : 'This worker no longer exists on the server.';
  } else if (inWorker && st === 'unauthorized') {
    text = 'The server wants its token again: sign in to go on.';
  }
  banner.hidden = !text;
  banner.textContent = text || '';
  badgeEl.classList.toggle('stale', inWorker && st !== 'live');
  badgeEl.title = inWorker && st !== 'live' ? 'last known status (not connected)' : badgeEl.title;
}
