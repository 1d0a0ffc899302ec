/**
 * Wire types of Chorus client protocol v1 (docs/protocol.md). One interface per frame, named
 * after its `type`. The server may add fields and frame types: every server frame is open to
 * extra fields, and unknown frames reach the app through the `frame` event.
 *
 * Apart from the close code table at the end, this module holds types only.
 */

/** A request id: the client's own, echoed on the reply. */
export type RequestId = number | string;

export type Role = "owner" | "moderator" | "member";
export type Visibility = "public" | "private" | "direct";

/** A file carried inside a message: `data` is standard base64 with padding. */
export interface Attachment {
  name: string;
  content_type: string;
  data: string;
}

/** Limits announced by the gateway in `ready`. */
export interface Limits {
  max_body_bytes: number;
  max_frame_bytes: number;
  max_rooms: number;
  send_rate_per_sec: number;
  send_burst: number;
  max_history_limit: number;
  max_attachment_bytes: number;
  [extra: string]: unknown;
}

/** Who is online in a room: the count and the first users. */
export interface OnlinePage {
  count: number;
  users: string[];
  has_more: boolean;
}

// ---------------------------------------------------------------------------------------------
// Server frames
// ---------------------------------------------------------------------------------------------

export interface ReadyFrame {
  type: "ready";
  id?: RequestId;
  user: string;
  conn_id: number;
  protocol: number;
  limits: Limits;
  /** SSE only: the session to POST client frames to. */
  session?: string;
  [extra: string]: unknown;
}

export interface JoinedFrame {
  type: "joined";
  id?: RequestId;
  room: string;
  last_seq: number;
  /** Absent for an open room. */
  visibility?: Visibility;
  online: OnlinePage;
  [extra: string]: unknown;
}

export interface LeftFrame {
  type: "left";
  id?: RequestId;
  room: string;
  /** Set when the server ended the subscription: the member action that did (`ban`, `remove`, …). */
  reason?: string;
  [extra: string]: unknown;
}

/** A membership or moderation change, carried by `msg` entries of kind `member`. */
export interface MemberChange {
  action:
    | "create"
    | "join"
    | "invite"
    | "leave"
    | "remove"
    | "set_role"
    | "mute"
    | "unmute"
    | "ban"
    | "unban"
    | "disconnect"
    | string;
  user: string;
  role?: Role;
  until?: number;
  visibility?: Visibility;
  members?: string[];
  [extra: string]: unknown;
}

/**
 * One entry of a room's log. Live deliveries, replays after `join … since` and `history` pages
 * all use this shape (history entries are given `type: "msg"` by the SDK).
 */
export interface MsgFrame {
  type: "msg";
  room: string;
  seq: number;
  ts: number;
  from: string;
  body: string;
  client_msg_id?: string;
  /** Absent for a chat message. */
  kind?: "edit" | "delete" | "event" | "member" | string;
  reply_to?: number;
  target?: number;
  attachments?: Attachment[];
  event?: string;
  data?: unknown;
  member?: MemberChange;
  /** Current state (history): when the body was last edited. */
  edited_ts?: number;
  /** Current state (history): the message was deleted. */
  deleted?: boolean;
  /** Current state (history): the seqs of the edits applied, oldest first. */
  edits?: number[];
  [extra: string]: unknown;
}

export interface AckFrame {
  type: "ack";
  id?: RequestId;
  room: string;
  client_msg_id?: string;
  seq: number;
  ts: number;
  /** True when this repeated an earlier `client_msg_id`: nothing new was stored. */
  duplicate?: boolean;
  [extra: string]: unknown;
}

export interface HistoryFrame {
  type: "history";
  id?: RequestId;
  room: string;
  messages: Omit<MsgFrame, "type">[];
  has_more: boolean;
  [extra: string]: unknown;
}

export interface OkFrame {
  type: "ok";
  id?: RequestId;
  [extra: string]: unknown;
}

export interface PongFrame {
  type: "pong";
  id?: RequestId;
  [extra: string]: unknown;
}

/** One room of a `rooms` reply, with its unread count. */
export interface RoomInfo {
  room: string;
  role: Role;
  visibility?: Visibility;
  last_seq: number;
  read_seq: number;
  unread: number;
  [extra: string]: unknown;
}

export interface RoomsFrame {
  type: "rooms";
  id?: RequestId;
  rooms: RoomInfo[];
  [extra: string]: unknown;
}

export interface MemberInfo {
  user: string;
  role: Role;
  /** Mute end in ms since the epoch, when muted. */
  muted_until?: number;
  [extra: string]: unknown;
}

export interface MembersFrame {
  type: "members";
  id?: RequestId;
  room: string;
  members: MemberInfo[];
  has_more: boolean;
  [extra: string]: unknown;
}

/** The reply to `who`: one page of the users online in a room. */
export interface OnlineFrame extends OnlinePage {
  type: "online";
  id?: RequestId;
  room: string;
  [extra: string]: unknown;
}

export interface PresenceFrame {
  type: "presence";
  room: string;
  online: number;
  joined: string[];
  left: string[];
  truncated?: boolean;
  [extra: string]: unknown;
}

export interface TypingFrame {
  type: "typing";
  room: string;
  user: string;
  typing: boolean;
  [extra: string]: unknown;
}

export interface ReceiptsFrame {
  type: "receipts";
  room: string;
  reads: { user: string; seq: number }[];
  [extra: string]: unknown;
}

/** An ephemeral application event relayed to a room's subscribers. */
export interface EventFrame {
  type: "event";
  room: string;
  from: string;
  event: string;
  data: unknown;
  [extra: string]: unknown;
}

/** The wire error codes of protocol v1. */
export type WireErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "limit_exceeded"
  | "rate_limited"
  | "unavailable"
  | "internal";

export interface ErrorFrame {
  type: "error";
  id?: RequestId;
  code: WireErrorCode | string;
  message: string;
  room?: string;
  retry_after_ms?: number;
  [extra: string]: unknown;
}

/** Drain: the gateway is shutting down; reconnect now (to the same URL) and resume. */
export interface ReconnectFrame {
  type: "reconnect";
  reason: string;
  [extra: string]: unknown;
}

/** SSE only: where a WebSocket would close with `code`, the stream sends this and ends. */
export interface CloseFrame {
  type: "close";
  code: number;
  reason: string;
  [extra: string]: unknown;
}

export type ServerFrame =
  | ReadyFrame
  | JoinedFrame
  | LeftFrame
  | MsgFrame
  | AckFrame
  | HistoryFrame
  | OkFrame
  | PongFrame
  | RoomsFrame
  | MembersFrame
  | OnlineFrame
  | PresenceFrame
  | TypingFrame
  | ReceiptsFrame
  | EventFrame
  | ErrorFrame
  | ReconnectFrame
  | CloseFrame;

// ---------------------------------------------------------------------------------------------
// Client frames
// ---------------------------------------------------------------------------------------------

interface Request {
  id?: RequestId;
}

/** A log entry request: idempotent when it carries a `client_msg_id`. */
interface EntryRequest extends Request {
  client_msg_id?: string;
}

/**
 * The frames that may carry the app's W3C trace context (`traceparent`), so the server's trace
 * of the send links to, or continues, the app's span (docs/operations/tracing.md).
 */
interface Traced {
  traceparent?: string;
}

export interface AuthRequest extends Request { type: "auth"; token: string }
export interface JoinRequest extends Request { type: "join"; room: string; since?: number }
export interface LeaveRequest extends Request { type: "leave"; room: string }
export interface SendRequest extends EntryRequest, Traced {
  type: "send";
  room: string;
  body: string;
  reply_to?: number;
  attachments?: Attachment[];
}
export interface EditRequest extends EntryRequest, Traced { type: "edit"; room: string; target: number; body: string }
export interface DeleteRequest extends EntryRequest, Traced { type: "delete"; room: string; target: number }
export interface EventRequest extends EntryRequest, Traced {
  type: "event";
  room: string;
  event: string;
  data: unknown;
  persist?: boolean;
}
export interface CreateRoomRequest extends EntryRequest {
  type: "create_room";
  room: string;
  visibility?: "public" | "private";
  members?: string[];
}
export interface OpenDmRequest extends Request { type: "open_dm"; user: string }
export interface InviteRequest extends EntryRequest { type: "invite"; room: string; user: string; role?: Role }
export interface RemoveRequest extends EntryRequest { type: "remove"; room: string; user: string }
export interface SetRoleRequest extends EntryRequest { type: "set_role"; room: string; user: string; role: Role }
export interface MuteRequest extends EntryRequest { type: "mute"; room: string; user: string; duration_ms?: number }
export interface UnmuteRequest extends EntryRequest { type: "unmute"; room: string; user: string }
export interface BanRequest extends EntryRequest { type: "ban"; room: string; user: string }
export interface UnbanRequest extends EntryRequest { type: "unban"; room: string; user: string }
export interface DisconnectRequest extends EntryRequest { type: "disconnect"; room: string; user: string }
export interface LeaveRoomRequest extends EntryRequest { type: "leave_room"; room: string }
export interface TypingRequest extends Request { type: "typing"; room: string; typing: boolean }
export interface ReadRequest extends Request { type: "read"; room: string; seq: number }
export interface RoomsRequest extends Request { type: "rooms" }
export interface MembersRequest extends Request { type: "members"; room: string; after?: string; limit?: number }
export interface WhoRequest extends Request { type: "who"; room: string; after?: string; limit?: number }
export interface HistoryRequest extends Request {
  type: "history";
  room: string;
  before?: number;
  after?: number;
  limit?: number;
}
export interface PingRequest extends Request { type: "ping" }

/** Log entry requests: acknowledged with `ack`, retried safely with the same `client_msg_id`. */
export type EntryFrame =
  | SendRequest
  | EditRequest
  | DeleteRequest
  | EventRequest
  | CreateRoomRequest
  | OpenDmRequest
  | InviteRequest
  | RemoveRequest
  | SetRoleRequest
  | MuteRequest
  | UnmuteRequest
  | BanRequest
  | UnbanRequest
  | DisconnectRequest
  | LeaveRoomRequest;

export type ClientFrame =
  | AuthRequest
  | JoinRequest
  | LeaveRequest
  | EntryFrame
  | TypingRequest
  | ReadRequest
  | RoomsRequest
  | MembersRequest
  | WhoRequest
  | HistoryRequest
  | PingRequest;

/** WebSocket close codes Chorus uses (docs/protocol.md, "Close codes"). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  /** No close frame: the network or the peer vanished. */
  ABNORMAL: 1006,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013,
  UNAUTHORIZED: 4001,
  SLOW_CONSUMER: 4008,
} as const;
