// Package protocol is Parley's pure protocol core: the wire formats, keys,
// franking, stamps, disclosures, the room ratchet, the pairing lottery and
// blob encryption, in the subpackages of this directory. spec/ is the
// normative text; each package names the spec section it implements.
//
// Nothing under protocol/ does I/O, reads the clock or draws its own
// randomness: time and randomness are arguments (a now time.Time, an
// io.Reader), so every function is deterministic, fuzzable and usable by
// any client, a browser build included. The packages import only the
// standard library, golang.org/x/crypto and each other; deps_test.go
// enforces that.
//
// # Walkthrough
//
// The packages, from the bottom up, following one conversation:
//
//   - wire: the canonical encoding every signed or hashed structure uses
//     (Encoder, and a Decoder whose every failure is a *wire.ParseError),
//     the domain-separation labels ("parley/v1/<purpose>", wire.Labeled,
//     wire.Hash) and every protocol limit (limits.go). Spec 02.
//   - keys: typed keys and IDs. A node's NodeID is its libp2p peer ID; a
//     user has an AccountKey (for its own node only) and, for every pairing,
//     fresh TicketKeys (an Ed25519 room signing key and an X25519 key).
//     Private keys neither print nor compare. Spec 02 §2.
//   - lottery: a user asks its node for a Ticket (epoch, home node, ticket
//     public keys, interest and avoid tags; no account). The node stamps its
//     tickets in batches. Nodes commit to and then reveal randomness; Seed
//     hashes the valid reveals; Match pairs the tickets deterministically;
//     Draw does the whole epoch and Audit re-checks it. Spec 07.
//   - room: the two paired clients Derive the same Room from their tickets:
//     a room ID, and one symmetric ratchet chain per direction that yields a
//     one-time keys.MessageKey per message. Room.Seal and Room.Open wrap
//     envelope sealing with the ratchet and the sender-binding checks.
//     Spec 06.
//   - franking and envelope: Seal pads the content, commits to it with
//     HMAC-SHA256 under a fresh franking key (the commitment goes in the
//     header, the key inside the ciphertext) and encrypts with
//     XChaCha20-Poly1305, the header as associated data. Open refuses
//     anything whose commitment does not verify, so nothing shown is
//     unreportable. Spec 03.
//   - stamp: the sender's node stamps a batch of envelope headers (or
//     tickets) with one Ed25519 signature over a Merkle root; each leaf's
//     Stamp still verifies alone, against the node's peer ID. Spec 04.
//   - disclosure: a recipient reports messages by disclosing plaintext,
//     franking keys and stamped headers, signed with its room key. Verify
//     checks it offline with the stamping node's ID and names the check
//     that failed. Spec 05.
//   - blob: files are encrypted in 64 KiB chunks under a fresh key with a
//     key commitment; a Manifest lists chunk hashes, its hash is the blob's
//     Address, and a Link carries the key only in its #fragment. Nodes check
//     chunks against the manifest without the key. Spec 08.
//
// Test vectors for every package live in spec/testdata and are both
// generated (make vectors) and checked by each package's TestVectors.
package protocol
