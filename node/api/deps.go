package api

import (
	"context"
	"io"
	"time"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/disclosure"
	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
)

// The subsystems behind the API, as the handlers need them. The node wires
// its subsystems in through small adapters, which translate the subsystems'
// errors into this package's sentinels (wrap a subsystem error with one of
// them: fmt.Errorf("%w: %w", api.ErrNotFound, err)). An error that wraps
// none of them is answered 500 internal and logged.
//
// Every method receives the authenticated account (never one taken from the
// request), and the implementations enforce ownership: a room the account
// is not a member of is ErrNotFound, exactly as a room that does not exist.

// Accounts registers accounts and manages their sessions (spec 09 §3).
type Accounts interface {
	// Register creates an account. Errors: ErrUsernameTaken, ErrKeyTaken,
	// ErrBadInvite, ErrRegistrationClosed.
	Register(ctx context.Context, username string, id keys.AccountID, invite string) (Account, error)
	// Challenge returns a fresh login challenge for username, whether or not
	// the account exists.
	Challenge(ctx context.Context, username string) (Challenge, error)
	// Login checks the signature over a challenge the node issued and
	// starts a session. Any failure is ErrUnauthenticated.
	Login(ctx context.Context, username string, nonce [32]byte, sig keys.Signature) (Session, error)
	// Authenticate returns the account a session token belongs to. An
	// unknown, expired or revoked token is ErrUnauthenticated.
	Authenticate(ctx context.Context, token string) (Account, error)
	// Revoke ends the session of token.
	Revoke(ctx context.Context, token string) error
}

// Rooms lists and closes an account's rooms (spec 09 §5).
type Rooms interface {
	// ForAccount returns the account's rooms, open and closed.
	ForAccount(ctx context.Context, acct keys.AccountID) ([]Room, error)
	// Leave closes room for both sides. Not a member: ErrNotFound. Leaving
	// a closed room succeeds (it is idempotent).
	Leave(ctx context.Context, acct keys.AccountID, room keys.RoomID) error
}

// Mailbox is each account's ordered event log (spec 09 §6).
type Mailbox interface {
	// Read returns up to limit of the account's events with position above
	// after, in increasing position order.
	Read(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error)
	// Wait blocks until the account has an event with position above after,
	// and then returns nil, or until ctx ends, and then returns ctx's error.
	Wait(ctx context.Context, acct keys.AccountID, after uint64) error
	// Ack deletes the account's events with position at most upto. It is
	// idempotent.
	Ack(ctx context.Context, acct keys.AccountID, upto uint64) error
}

// MailboxNexter is an optional method of a Mailbox: Wait and Read in one
// (the events after after, waiting for at least one), which a push loop
// uses to read the store once per wake-up instead of twice.
type MailboxNexter interface {
	Next(ctx context.Context, acct keys.AccountID, after uint64, limit int) ([]Event, error)
}

// Sender stamps and durably stores what an account sends (spec 09 §5).
type Sender interface {
	// Send stamps env and writes it durably to the recipient's mailbox or to
	// the outbox for a remote recipient, and returns only then. The API has
	// parsed env, checked that it is unstamped, that its header names room
	// and that its time and content type are acceptable; Send checks the
	// rest: membership (ErrNotFound), an open room (ErrRoomClosed), the
	// header's sender and recipient tickets (ErrBadEnvelope), and the
	// account's standing (ErrSuspended). A retry with the same txid returns
	// the first result with Duplicate set and sends nothing.
	Send(ctx context.Context, from keys.AccountID, room keys.RoomID, txid string, env *envelope.Envelope) (SendResult, error)
}

// Pairing hands out lottery tickets (spec 09 §4).
type Pairing interface {
	// RequestTicket stamps a ticket for the next epoch. Errors:
	// ErrAlreadyWaiting, ErrSuspended.
	RequestTicket(ctx context.Context, acct keys.AccountID, req TicketRequest) (TicketInfo, error)
	// Withdraw withdraws the account's waiting ticket, if any.
	Withdraw(ctx context.Context, acct keys.AccountID) error
}

// Reports takes disclosures (spec 09 §7).
type Reports interface {
	// Submit verifies d and files the report. A disclosure that does not
	// verify is ErrBadDisclosure, wrapping the *disclosure.VerifyError,
	// whose check names the failure in the response.
	Submit(ctx context.Context, acct keys.AccountID, d *disclosure.Disclosure) (Receipt, error)
}

// Blobs stores the ciphertext of accounts' files (spec 09 §9). Upload IDs
// are 16 bytes; owner checks are the implementation's: another account's
// upload or blob is ErrBlobNotFound, as a missing one is.
type Blobs interface {
	// CreateUpload starts an upload of a blob of size plaintext bytes in
	// parts of partSize ciphertext bytes (0: the node's default). Errors:
	// ErrBlobTooLarge, ErrQuota, ErrNodeFull, ErrTooManyUploads,
	// ErrBadRequest (part size).
	CreateUpload(ctx context.Context, acct keys.AccountID, size uint64, partSize uint32) (BlobUpload, error)
	// PutPart reads part n from body, which must hold exactly the part.
	// Errors: ErrBlobNotFound, ErrBadPart, ErrPartConflict, ErrUploadBusy.
	PutPart(ctx context.Context, acct keys.AccountID, id [16]byte, n uint32, body io.Reader) error
	// UploadStatus returns the upload with the parts received. Errors:
	// ErrBlobNotFound.
	UploadStatus(ctx context.Context, acct keys.AccountID, id [16]byte) (BlobUpload, error)
	// CompleteUpload checks the uploaded ciphertext against manifest and
	// stores the blob. Errors: ErrBlobNotFound, ErrUploadIncomplete,
	// ErrBadBlob, ErrUploadBusy, ErrTakenDown.
	CompleteUpload(ctx context.Context, acct keys.AccountID, id [16]byte, manifest []byte) (BlobInfo, error)
	// AbortUpload deletes the upload. Errors: ErrBlobNotFound, ErrUploadBusy.
	AbortUpload(ctx context.Context, acct keys.AccountID, id [16]byte) error
	// OpenBlob returns the blob's ciphertext, for any account. Errors:
	// ErrBlobNotFound, ErrTakenDown.
	OpenBlob(ctx context.Context, addr blob.Address) (BlobContent, BlobInfo, error)
	// BlobManifest returns the blob's manifest encoding, for any account.
	// Errors: ErrBlobNotFound, ErrTakenDown.
	BlobManifest(ctx context.Context, addr blob.Address) ([]byte, error)
	// DeleteBlob deletes the account's own blob. Errors: ErrBlobNotFound.
	DeleteBlob(ctx context.Context, acct keys.AccountID, addr blob.Address) error
}

// BlobContent is a blob's ciphertext, seekable for range requests.
type BlobContent interface {
	io.ReadSeeker
	io.Closer
}

// BlobUpload is an upload as its owner sees it.
type BlobUpload struct {
	ID       [16]byte
	Size     uint64   // declared plaintext bytes
	Stored   uint64   // ciphertext bytes: the sum of the parts
	PartSize uint32   // ciphertext bytes per part; the last may be shorter
	Parts    uint32   // number of parts
	Done     []uint32 // parts received (UploadStatus only)
	Expires  time.Time
}

// BlobInfo describes a stored blob.
type BlobInfo struct {
	Address blob.Address
	Size    uint64 // plaintext bytes
	Stored  uint64 // ciphertext bytes
	Created time.Time
	Expires time.Time
}

// Limiter is a rate limiter keyed by account or client address, such as a
// set of token buckets.
type Limiter interface {
	// Allow takes one token for key. When none is left it returns false
	// and how long until one is.
	Allow(key string) (ok bool, retryAfter time.Duration)
}

// Deps are the subsystems the API serves. Every interface is required; the
// limiters are optional and default to built-in token buckets with the
// Config's rates.
type Deps struct {
	Accounts Accounts
	Rooms    Rooms
	Mailbox  Mailbox
	Sender   Sender
	Pairing  Pairing
	Reports  Reports
	// Blobs is optional: without it the blob endpoints (spec 09 §9)
	// answer 404 not_found.
	Blobs Blobs

	// AccountLimiter limits requests per account (keyed by the account ID's
	// text form). Default: token buckets at Config.AccountRate.
	AccountLimiter Limiter
	// IPLimiter limits requests per client address. Default: token buckets
	// at Config.IPRate.
	IPLimiter Limiter
}

// Account is an account as the API shows it.
type Account struct {
	ID        keys.AccountID
	Username  string
	Created   time.Time
	Suspended bool
}

// Challenge is a login challenge (spec 09 §3).
type Challenge struct {
	Nonce    [32]byte
	Audience keys.NodeID // the node whose ID the signature covers
	Expires  time.Time
}

// Session is a logged-in session. Token is a secret: it is sent to the
// client once and never logged.
type Session struct {
	Token   string
	Expires time.Time
	Account Account
}

// RoomSide is one member of a room: its ticket keys and home node.
type RoomSide struct {
	Sign keys.TicketID
	DH   keys.DHPublic
	Home keys.NodeID
}

// Room is a room as its member sees it.
type Room struct {
	ID      keys.RoomID
	Me      RoomSide
	Partner RoomSide
	Created time.Time
	Closed  time.Time // zero while the room is open
}

// EventKind is the kind of a mailbox event.
type EventKind string

// Event kinds (spec 09 §6).
const (
	EventMessage    EventKind = "message"
	EventPaired     EventKind = "paired"
	EventRoomClosed EventKind = "room_closed"
)

// ClosedBy says which side closed a room.
type ClosedBy string

// Sides that close a room.
const (
	ClosedByMe      ClosedBy = "me"
	ClosedByPartner ClosedBy = "partner"
)

// Event is one mailbox event. Which of the last three fields is set depends
// on Kind.
type Event struct {
	Pos  uint64
	Kind EventKind
	Room keys.RoomID
	Time time.Time

	// Envelope is the stamped envelope's canonical encoding (message).
	Envelope []byte
	// Paired is the new room (paired).
	Paired *Room
	// By is who closed the room (room_closed).
	By ClosedBy
}

// SendResult is the answer to a send.
type SendResult struct {
	ID        [32]byte    // the envelope ID
	Stamp     stamp.Stamp // the node's stamp of the header
	Duplicate bool        // a retry of an earlier send with the same txid
}

// TicketRequest is what a client asks the lottery for (spec 09 §4).
type TicketRequest struct {
	Ticket    keys.TicketPublic
	Interests [][16]byte
	Avoid     [][16]byte
}

// TicketInfo describes a stamped ticket.
type TicketInfo struct {
	ID        [32]byte
	Epoch     uint64
	EpochEnds time.Time
}

// Receipt acknowledges a report.
type Receipt struct {
	ID       [32]byte
	Received time.Time
}
