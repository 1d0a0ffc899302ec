/**
 * Wire types of Chorus client protocol v1 (docs/protocol.md). One interface per frame, named
 * after its `type`. The server may add fields and frame types: every server frame is open to
 * extra fields, and unknown frames reach the app through the `frame` event.
 *
 * Apart from the close code table at the end, this module holds types only.
 */
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
};
