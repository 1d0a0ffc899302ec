// DOM and formatting helpers of the web app. Text goes in through textContent and attributes
// through setAttribute: nothing here parses HTML.

export const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

/** Creates an element; `text` is set with textContent, `attrs` with setAttribute. */
export function el(tag, { cls, text, attrs, on } = {}, children = []) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (on) for (const [k, fn] of Object.entries(on)) e.addEventListener(k, fn);
  for (const c of children) if (c) e.append(c);
  return e;
}

/** Makes `parent`'s children exactly `nodes`, in order, moving only what is out of place. */
export function reconcile(parent, nodes) {
  let cur = parent.firstChild;
  for (const n of nodes) {
    if (n === cur) { cur = cur.nextSibling; continue; }
    parent.insertBefore(n, cur);
  }
  while (cur) { const next = cur.nextSibling; parent.removeChild(cur); cur = next; }
}

export const utf8Len = (s) => new TextEncoder().encode(s).length;
export const ROOM_RE = /^[A-Za-z0-9_\-.:@]{1,128}$/;
export const USER_RE = /^[A-Za-z0-9_\-.@]{1,64}$/;

export function fmtTime(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function errText(e) {
  if (!e) return "unknown error";
  const code = e.code ? `${e.code}: ` : "";
  return `${code}${e.message || String(e)}`;
}

/** The claims of a JWT, or null (used only to show a name and to renew dev tokens early). */
