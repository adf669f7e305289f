// The message box under the conversation: Enter sends, Shift+Enter adds a line, and
// what is typed is kept as a draft per worker until it is sent.

import { $ } from './dom.js';

const draftKey = (id) => `workerhub.draft.${id}`;

export class Composer {
  /** @param {Conversation} conversation where messages go */
  constructor(conversation) {
    this.conversation = conversation;
    this.form = $('composer');
    this.input = $('composer-input');
    let draftTimer = null;
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      const text = this.input.value;
      if (!text.trim() || !conversation.id) return;
      conversation.send(text);
      this.input.value = '';
      this.forget(conversation.id);
      this.input.focus();
    });
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        this.form.requestSubmit();
      } else if (e.key === 'Escape') {
        this.input.blur();
      }
    });
    this.input.addEventListener('input', () => {
      clearTimeout(draftTimer);
      const id = conversation.id;
      draftTimer = setTimeout(() => {
        if (!id) return;
        try {
          if (this.input.value) localStorage.setItem(draftKey(id), this.input.value);
          else localStorage.removeItem(draftKey(id));
        } catch { /* ignore */ }
      }, 300);
    });
  }

  /** Shows the draft kept for a worker. */
  restore(id) {
    try { this.input.value = localStorage.getItem(draftKey(id)) || ''; } catch { this.input.value = ''; }
  }

  /** Drops the draft kept for a worker. */
  forget(id) {
    try { localStorage.removeItem(draftKey(id)); } catch { /* ignore */ }
  }

  /** Puts a message back in the box to edit it. */
  edit(text) {
    this.input.value = text;
    this.input.focus();
  }

  /** What the box offers for worker `w`: whether it takes messages, and what sending does now. */
  render(w) {
    const send = $('composer-send');
    const hint = $('composer-hint');
    $('composer-label').textContent = `Message to ${w.name || w.id}`;
    this.input.setAttribute('aria-label', `Message to ${w.name || w.id}`);
    const q = Array.isArray(w.queue) ? w.queue.length : 0;
    const busy = w.status === 'busy' || w.status === 'waiting_approval';
    const running = w.status === 'running' || w.status === 'starting';
    if (w.deleted || w.takes_messages === false) {
      this.input.disabled = true;
      send.disabled = true;
      hint.textContent = w.deleted ? 'This worker was deleted: it takes no more messages.' : 'This worker follows a session read-only: it takes no messages.';
    } else {
      this.input.disabled = false;
      send.disabled = false;
      if (w.status === 'disconnected') {
        hint.textContent = `${w.host || 'Its host'} cannot be reached: a message now is refused (nothing is sent). The page shows when it answers again.`;
      } else if (!w.has_turns && !running) {
        hint.textContent = 'The process is not running: press Start to run it again.';
      } else if (w.status === 'waiting_approval') {
        hint.textContent = `Waiting for an approval above: a message now waits in the queue${q ? ` (${q} waiting)` : ''}.`;
      } else if (busy) {
        hint.textContent = `Working: a message now waits in the queue${q ? ` (${q} waiting)` : ''}.`;
      } else {
        hint.textContent = '';
      }
      send.textContent = busy ? 'Queue' : 'Send';
    }
  }
}
