// Rendering of one room's log entries: chat messages (with reply quotes, edits, tombstones and
// attachments), membership lines, the sender's own pending messages, and where read receipts
// go. Pure functions of the entry and a context of callbacks; app.js owns the state.
//
// Attachments become blob: URLs. A blob: URL runs in this page's origin, so only raster images
// keep their content type (shown in an <img>, which never runs script); everything else is
// made application/octet-stream and offered as a download.

import { el, errText, fmtBytes, fmtTime } from "./dom.js";

const INLINE_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"]);

/** "room/seq/index" -> blob: URL, so re-renders reuse them. */
const blobUrls = new Map();

/**
 * ctx: { me, label(room), onReply(entry), onEdit(entry), onDelete(entry), onRetry(id, p),
 * onDiscard(id) }
 */
/** seq -> the users (other than `me`) whose read mark has reached that chat message. */
export function seenPositions(r, seqs, me) {
  const out = new Map();
  const chat = seqs.filter((s) => (r.msgs.get(s).kind ?? "message") === "message");
  for (const [user, read] of r.reads) {
    if (user === me) continue;
    // The last message at or below the mark, not counting the reader's own (they wrote it).
    let at = null;
    for (let i = chat.length - 1; i >= 0; i--) {
      if (chat[i] <= read && r.msgs.get(chat[i]).from !== user) { at = chat[i]; break; }
    }
    if (at === null) continue;
    if (!out.has(at)) out.set(at, []);
    out.get(at).push(user);
  }
  return out;
}

function memberText(e, label) {
  const m = e.member || {};
  const who = m.user ?? e.from;
  const by = e.from && e.from !== who ? ` by ${e.from}` : "";
  switch (m.action) {
    case "create": return `${who} created ${label(e.room)}${m.visibility ? ` (${m.visibility})` : ""}`;
    case "join": return `${who} joined`;
    case "invite": return `${who} was added${by}`;
    case "leave": return `${who} left`;
    case "remove": return `${who} was removed${by}`;
    case "set_role": return `${who} is now ${m.role ?? "a member"}`;
    case "mute": return `${who} was muted${by}`;
    case "unmute": return `${who} was unmuted${by}`;
    case "ban": return `${who} was banned${by}`;
    case "unban": return `${who} was unbanned${by}`;
    case "disconnect": return `${who} was disconnected${by}`;
    default: return `${who}: ${m.action ?? "membership changed"}`;
  }
}

export function renderEntry(r, e, ctx) {
  if (e.kind === "member" || e.kind === "event") {
    const text = e.kind === "member" ? memberText(e, ctx.label) : `${e.from} sent ${e.event}`;
    return el("li", { cls: "system", text, attrs: { "data-testid": "system-line", "data-seq": e.seq, "data-kind": e.kind } });
  }
  const mine = e.from === ctx.me;
  const li = el("li", {
    cls: `msg${mine ? " mine" : ""}${e.deleted ? " deleted" : ""}`,
    attrs: { "data-testid": "message", "data-seq": e.seq, "data-from": e.from, "data-deleted": e.deleted ? "true" : null },
  });
  if (e.reply_to) li.append(replyQuote(r, e.reply_to));
  const head = el("div", { cls: "msg-head" }, [
    el("span", { cls: "msg-from", text: e.from, attrs: { "data-testid": "message-from" } }),
    el("span", { cls: "msg-time", text: fmtTime(e.ts), attrs: { title: e.ts ? new Date(e.ts).toLocaleString() : "" } }),
    e.edited_ts && !e.deleted ? el("span", { cls: "msg-edited", text: "(edited)", attrs: { "data-testid": "message-edited" } }) : null,
  ]);
  li.append(head);
  li.append(el("div", { cls: "msg-body", text: e.deleted ? "message deleted" : (e.body ?? ""), attrs: { "data-testid": "message-body" } }));
  if (!e.deleted && Array.isArray(e.attachments) && e.attachments.length) li.append(renderAttachments(r, e));

  const actions = el("div", { cls: "msg-actions" });
  if (!e.deleted) {
    actions.append(el("button", { text: "Reply", attrs: { type: "button", "data-testid": "reply-button" }, on: { click: () => ctx.onReply(e) } }));
    if (mine) {
      actions.append(el("button", { text: "Edit", attrs: { type: "button", "data-testid": "edit-button" }, on: { click: () => ctx.onEdit(e) } }));
      actions.append(el("button", { text: "Delete", attrs: { type: "button", "data-testid": "delete-button" }, on: { click: () => ctx.onDelete(e) } }));
    }
  }
  li.append(actions);
  return li;
}

export function replyQuote(r, seq) {
  const t = r.msgs.get(seq);
  let text;
  if (!t) text = `↪ message #${seq}`;
  else if (t.deleted) text = `↪ ${t.from}: message deleted`;
  else text = `↪ ${t.from}: ${(t.body || (t.attachments?.length ? "attachment" : "")).slice(0, 140)}`;
  return el("div", { cls: "reply-quote", text, attrs: { "data-testid": "reply-quote", "data-reply-to": seq } });
}

function attachmentUrl(key, a, asImage) {
  let url = blobUrls.get(key);
  if (url) return url;
  const bin = atob(a.data || "");
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  // Only raster images keep their type; everything else is opaque bytes (see above).
  url = URL.createObjectURL(new Blob([bytes], { type: asImage ? a.content_type : "application/octet-stream" }));
  blobUrls.set(key, url);
  return url;
}

function renderAttachments(r, e) {
  const box = el("div", { cls: "attachments" });
  e.attachments.forEach((a, i) => {
    const key = `${r.name}/${e.seq}/${i}`;
    const type = String(a.content_type || "").toLowerCase();
    const size = Math.floor(((a.data || "").length * 3) / 4);
    let url;
    try { url = attachmentUrl(key, a, INLINE_IMAGE_TYPES.has(type)); } catch { return; }
    if (INLINE_IMAGE_TYPES.has(type)) {
      box.append(el("img", { attrs: { src: url, alt: a.name || "image", title: a.name || "", "data-testid": "attachment-image", loading: "lazy" } }));
    } else {
      box.append(el("a", {
        text: `${a.name || "file"} (${fmtBytes(size)})`,
        attrs: { href: url, download: a.name || "file", rel: "noopener", "data-testid": "attachment-link" },
      }));
    }
  });
  return box;
}

export function renderPending(r, id, p, ctx) {
  const failed = p.state === "failed";
  const li = el("li", {
    cls: `msg mine pending${failed ? " failed" : ""}`,
    attrs: { "data-testid": "pending-message", "data-client-msg-id": id, "data-state": p.state },
  }, [
    p.replyTo ? replyQuote(r, p.replyTo) : null,
    el("div", { cls: "msg-head" }, [
      el("span", { cls: "msg-from", text: ctx.me }),
      el("span", { cls: "msg-time", text: failed ? `not sent — ${errText(p.error)}` : p.ackSeq ? "sent" : "sending…" }),
    ]),
    el("div", { cls: "msg-body", text: p.body, attrs: { "data-testid": "message-body" } }),
    p.attachments?.length ? el("div", { cls: "attachments" }, p.attachments.map((a) => el("span", { cls: "file-chip", text: a.name }))) : null,
  ]);
  if (failed) {
    li.append(el("div", { cls: "msg-actions" }, [
      el("button", { text: "Retry", attrs: { type: "button", "data-testid": "retry-button" }, on: { click: () => ctx.onRetry(id, p) } }),
      el("button", { text: "Discard", attrs: { type: "button", "data-testid": "discard-button" }, on: { click: () => ctx.onDiscard(id) } }),
    ]));
  }
  return li;
}
