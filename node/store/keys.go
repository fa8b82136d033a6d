package store

// The key layout: every key a node writes starts with one of these
// prefixes, and each prefix belongs to one subsystem, which alone reads and
// writes it. IDs are written as their raw fixed-size bytes; integers that
// order keys are big-endian so byte order is numeric order. Values are the
// owning subsystem's encoding (documented there). Nothing under any prefix
// holds plaintext, franking keys or blob keys: envelopes are stored sealed,
// tokens and invites only as hashes.
const (
	// PrefixMeta: meta/<name> -> store-wide values (schema version).
	PrefixMeta = "meta/"

	// Accounts (node/accounts).

	// PrefixAccount: acct/<AccountID 32> -> account record.
	PrefixAccount = "acct/"
	// PrefixUsername: user/<username> -> AccountID.
	PrefixUsername = "user/"
	// PrefixToken: tok/<SHA-256(token) 32> -> session record (account, expiry).
	PrefixToken = "tok/"
	// PrefixAccountTokens: atok/<AccountID 32><SHA-256(token) 32> -> "" (revoke all).
	PrefixAccountTokens = "atok/"
	// PrefixInvite: inv/<SHA-256(invite token) 32> -> invite record.
	PrefixInvite = "inv/"

	// Mailboxes and rooms (node/mailbox, node/rooms).

	// PrefixMailbox: mbox/<AccountID 32><position u64> -> stored envelope.
	PrefixMailbox = "mbox/"
	// PrefixMailboxHead: mhead/<AccountID 32> -> next position (u64).
	PrefixMailboxHead = "mhead/"
	// PrefixEnvelopeSeen: seen/<AccountID 32><envelope ID 32> -> position, for
	// exactly-once delivery of at-least-once input.
	PrefixEnvelopeSeen = "seen/"
	// PrefixSendTx: tx/<AccountID 32><client transaction ID> -> send result.
	PrefixSendTx = "tx/"
	// PrefixRoom: room/<RoomID 32> -> room record (both tickets, home nodes, state).
	PrefixRoom = "room/"
	// PrefixAccountRooms: aroom/<AccountID 32><RoomID 32> -> "".
	PrefixAccountRooms = "aroom/"

	// Lottery (node/pairing).

	// PrefixTicket: tkt/<TicketID 32> -> ticket record (owning account, epoch,
	// expiry): the ticket-to-account link, kept for wire.MaxDisclosureAge.
	PrefixTicket = "tkt/"
	// PrefixEpoch: epoch/<epoch u64>/... -> an epoch's lottery inputs, for audit.
	PrefixEpoch = "epoch/"
	// PrefixWaiting: wait/<AccountID 32> -> the account's waiting ticket.
	PrefixWaiting = "wait/"
	// PrefixTicketDH: tktdh/<X25519 key 32> -> the ticket signing key that
	// used it (ticket keys are never reused).
	PrefixTicketDH = "tktdh/"

	// Delivery between nodes (node/federation).

	// PrefixOutbox: out/<destination NodeID 32><seq u64> -> queued stamped
	// envelope (enqueue time, envelope), deleted once the destination
	// acknowledges it; seq is per destination, in send order.
	PrefixOutbox = "out/"

	// Reports (node/reports).

	// PrefixReport: rep/<report ID 32> -> stored disclosure and its state.
	PrefixReport = "rep/"
	// PrefixReportOutbox: repout/... -> reports waiting to be forwarded to
	// the accused's home node (node/reports/forward).
	PrefixReportOutbox = "repout/"

	// Moderation (node/moderation).

	// PrefixModeration: mod/... -> counted reports, actions with their
	// evidence, throttles (the layout is in node/moderation).
	PrefixModeration = "mod/"

	// Blobs (node/blobs). The ciphertext itself is in files under
	// <data_dir>/blobs; these keys hold what describes it.

	// PrefixBlob: blob/<Address 32> -> blob record (owner, sizes, created,
	// expires).
	PrefixBlob = "blob/"
	// PrefixBlobManifest: bman/<Address 32> -> the blob's manifest encoding.
	PrefixBlobManifest = "bman/"
	// PrefixBlobUpload: bup/<upload ID 16> -> upload record (owner, declared
	// size, part size, created, expires).
	PrefixBlobUpload = "bup/"
	// PrefixBlobPart: bpart/<upload ID 16><part u32> -> the hashes of the
	// chunks of the part received (layout in node/blobs).
	PrefixBlobPart = "bpart/"
	// PrefixBlobTakedown: bdown/<Address 32> -> takedown record; the address
	// is refused from then on.
	PrefixBlobTakedown = "bdown/"
	// PrefixBlobFederation: bfed/... -> which node a cached blob came from,
	// which nodes fetched a blob from this one, and the takedown notices
	// waiting to be sent to them (the layout is in node/blobs).
	PrefixBlobFederation = "bfed/"
)

// Key builds a key from a prefix and parts, copying them into one slice.
func Key(prefix string, parts ...[]byte) []byte {
	n := len(prefix)
	for _, p := range parts {
		n += len(p)
	}
	k := make([]byte, 0, n)
	k = append(k, prefix...)
	for _, p := range parts {
		k = append(k, p...)
	}
	return k
}
