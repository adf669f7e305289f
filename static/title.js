// The tab's title: what the page shows ("alice (busy) · workerhub"), after the number of
// tool calls that wait for approval on any worker ("(2) alice (busy) · workerhub"), so
// that a person in another tab sees that someone waits.

let base = document.title || 'workerhub';
let waiting = 0;

function render() {
  document.title = waiting > 0 ? `(${waiting}) ${base}` : base;
}

/** What the page shows, as the title says it. */
export function setTitle(text) {
  base = text;
  render();
}

/** How many requests wait for a person. */
export function setWaiting(n) {
  waiting = n;
  render();
}
