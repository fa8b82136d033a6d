// Package federation delivers envelopes between nodes (spec 12-delivery,
// DESIGN §3.2, issue 4): the durable outbox, the sender that empties it
// over the libp2p delivery protocol, and the stream handler that receives
// other nodes' batches.
//
// The path of a message to a recipient on another node:
//
//  1. The relay stamps it and calls Outbox.Forward inside the store batch of
//     the send; the send is acknowledged to the client once that batch is
//     synced. The relay then calls Outbox.Committed, which makes the entry
//     visible and wakes the destination's worker.
//  2. The Sender's worker for that destination reads up to Config.MaxBatch
//     entries in order, writes them as one Batch frame on its delivery
//     stream, and goes on with the next entries while fewer than
//     Config.Window Batches await their Acks; a reader goroutine takes
//     the Acks in order (each within Config.AckTimeout).
//  3. On the destination, the Handler reads the frame (bounded by
//     wire.MaxDeliverFrame, read deadlines, the stream's memory scope and a
//     per-peer token bucket), and calls Inbox.Accept (the relay), which
//     checks every envelope and stores the good ones with one synced write.
//     Only then is the Ack written.
//  4. The worker removes every answered entry: stored and duplicate ones
//     are delivered, rejected ones are dropped and counted by reason.
//     Anything else (no connection, a reset, a timeout, a bad or busy
//     Ack) ends the stream with every Batch in flight: their entries stay
//     queued and the worker starts again from the first one, after an
//     exponential backoff with full jitter, reset when a connection to the
//     destination is established.
//
// Delivery is at least once on the wire and exactly once into the
// recipient's mailbox: the receiver de-duplicates by envelope ID.
//
// # Key layout
//
// Under store.PrefixOutbox:
//
//	out/<destination NodeID 32><seq u64>  -> u8 version (1), i64 enqueue time (Unix ns), envelope (canonical, stamped)
//
// seq is per destination, given out in Forward order; the queue order is
// the send order, which keeps every room's order.
package federation
