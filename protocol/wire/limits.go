package wire

import "time"

// Protocol limits (spec 02-encoding §4, which mirrors this file). Every
// decoder checks its input against these before allocating; every node
// enforces them on what it receives. Changing one is a protocol change.
const (
	// Envelopes and messages (spec 03-envelope).

	// MaxPlaintext is the largest message content a client may seal, in bytes.
	MaxPlaintext = 60 * 1024
	// MaxEnvelopeCiphertext bounds an envelope's ciphertext: the largest
	// padding bucket plus the AEAD tag.
	MaxEnvelopeCiphertext = 64*1024 + 16
	// MaxContentType is the highest content-type code defined in v1.
	MaxContentType = 3

	// Stamps (spec 04-stamps).

	// MaxStampBatch is the most leaves one node signature may cover.
	MaxStampBatch = 4096
	// MaxStampPath is the longest Merkle path: ceil(log2(MaxStampBatch)).
	MaxStampPath = 12

	// Disclosures (spec 05-disclosures).

	// MaxDisclosureItems is the most messages one report may disclose.
	MaxDisclosureItems = 32
	// MaxReasonText bounds the reporter's free-text reason, in bytes.
	MaxReasonText = 1024
	// MaxDisclosureSize bounds a whole encoded disclosure, in bytes: a round
	// figure above the largest valid encoding (MaxDisclosureItems items of
	// MaxPlaintext bytes with longest stamp paths, and MaxReasonText), so a
	// node can bound a report's read before it parses it.
	MaxDisclosureSize = 2 << 20
	// MaxDisclosureAge is how long after its stamp a message stays
	// reportable. Nodes keep the ticket-to-account link this long.
	MaxDisclosureAge = 30 * 24 * time.Hour
	// MaxClockSkew is how far in the future a signed time may lie before it
	// is refused, to absorb clock differences between machines.
	MaxClockSkew = 5 * time.Minute

	// Room keys (spec 06-room-keys).

	// MaxSkippedKeys is the most out-of-order message keys a receiving chain
	// keeps; older gaps are forgotten and their messages refused.
	MaxSkippedKeys = 1024
	// MaxSkipAhead is the furthest ahead of the next expected sequence a
	// single message may jump.
	MaxSkipAhead = 1024

	// Lottery (spec 07-lottery).

	// MaxInterestTags is the most interest tags one ticket may carry.
	MaxInterestTags = 8
	// MaxAvoidTags is the most avoid tags one ticket may carry.
	MaxAvoidTags = 8
	// MaxTicketsPerEpoch is the most tickets one matching may take.
	MaxTicketsPerEpoch = 1 << 20
	// MaxNodesPerEpoch is the most nodes whose reveals feed one seed.
	MaxNodesPerEpoch = 4096
	// MaxTicketBatch is the most tickets one node gossips for one epoch, in
	// its one ticket batch message (spec 07-lottery §13.2).
	MaxTicketBatch = 1024
	// MaxTicketBatchSize bounds an encoded ticket batch message, in bytes: a
	// round figure above the largest valid encoding (43 + 1024 × 866 =
	// 886,827), below go-libp2p-pubsub's default 1 MiB message limit.
	MaxTicketBatchSize = 900 * 1024

	// Delivery between nodes (spec 12-delivery).

	// MaxDeliverFrame bounds one frame body of the delivery protocol, in
	// bytes; a reader refuses a longer length prefix before reading on.
	MaxDeliverFrame = 4 << 20
	// MaxDeliverEnvelopes is the most envelopes one delivery batch carries.
	MaxDeliverEnvelopes = 1024
	// MaxRetryAfter bounds the wait a busy delivery ack may ask for.
	MaxRetryAfter = time.Minute

	// Reports between nodes (spec 13-moderation).

	// MaxReportFrame bounds the body of a report protocol request: a
	// version byte and a length-prefixed disclosure of at most
	// MaxDisclosureSize bytes.
	MaxReportFrame = 1 + 4 + MaxDisclosureSize

	// Blobs (spec 08-blobs).

	// BlobChunkSize is the plaintext size of every blob chunk but the last.
	BlobChunkSize = 64 * 1024
	// MaxBlobChunks bounds a blob's chunk count (2 GiB of plaintext).
	MaxBlobChunks = 32 * 1024
	// MaxBlobLink bounds the length of a blob link's text form.
	MaxBlobLink = 512
	// MaxBlobPartChunks bounds one part of a blob upload to a node (spec
	// 09-client-api §9), in ciphertext chunks: a part is at most this many
	// times blob.MaxChunkSize bytes (8,390,656).
	MaxBlobPartChunks = 128
	// MaxBlobFetchFrame bounds one frame body of the blob fetch protocol
	// (spec 08-blobs §12), in bytes: the largest is the answer carrying a
	// manifest of MaxBlobChunks chunks (a little over 1 MiB).
	MaxBlobFetchFrame = 2 << 20

	// Federation (spec 11-federation).

	// MaxNetworkID bounds a network ID ([a-z0-9-], at least one byte).
	MaxNetworkID = 32
	// MaxRecordAddrs is the most listen addresses one node record carries.
	MaxRecordAddrs = 16
	// MaxRecordAddr bounds one binary multiaddr in a node record, in bytes.
	MaxRecordAddr = 128
	// MaxRecordSoftware bounds a node record's software version string.
	MaxRecordSoftware = 64
	// MaxRecordProtocols is the most protocol versions one node record lists.
	MaxRecordProtocols = 16
	// MaxRecordProtocol bounds one protocol version string in a node record.
	MaxRecordProtocol = 32
	// MaxRecordSize bounds a whole encoded node record, in bytes: a round
	// figure above the largest valid encoding (2,858 bytes).
	MaxRecordSize = 4096
	// MaxRecordAge is how long after its issue time a node record is
	// accepted; a node re-publishes its record well within it.
	MaxRecordAge = 24 * time.Hour
)
