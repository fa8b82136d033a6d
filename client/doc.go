// Package client is the Go SDK of Parley's client API (spec
// 09-client-api). All cryptography happens here, with the protocol
// packages: the node only ever sees ciphertext, stamped headers and public
// keys, unless the user discloses messages in a report.
//
// Two levels:
//
//   - Client is a thin client of one node: one method per endpoint
//     (Register, Challenge, Login, Pair, Send, Sync, SyncWS, Ack, Leave,
//     Report, Health, ...), JSON in and out, error answers as *APIError,
//     matched with errors.Is against ErrNotFound, ErrRateLimited, ... .
//   - Session is a user: it owns a keystore (client/keystore) holding the
//     account key, the session token, ticket keys, the sync position and
//     one record per room (its ratchet state, partner, avoid key, the last
//     received messages and the outbox). It logs in by itself, pairs
//     (fresh ticket keys saved before the node hears of them; interest and
//     avoid tags; the room derived from the two tickets and checked against
//     the node's room ID), seals and sends (the advanced room state saved
//     before the envelope leaves; retries under one txid), receives (every
//     message verified and opened before it is shown; saved, then
//     acknowledged) and reports (a signed disclosure of kept messages).
//
// # Durability
//
// The Session follows DESIGN §3.2 on the client side: persist before you
// send, acknowledge after you persist. A crash between saving and sending
// leaves the sealed envelope in the room's outbox, and Flush sends it under
// its txid (the node delivers it once); a crash between saving and
// acknowledging only makes the node deliver events again, which the saved
// sync position and the room ratchets absorb.
package client
