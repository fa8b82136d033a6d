// Package disclosure implements Parley's reports (spec 05-disclosures,
// DESIGN §3.5): a recipient lifts the blind on messages it received by
// disclosing their stamped headers, plaintexts and franking keys, signed with
// its ticket (room) key.
//
// Anyone holding a Disclosure and the stamping node's ID can Verify it
// offline: the stamps prove the node accepted those headers from the
// sender's ticket, the franking commitments in the headers prove the
// plaintexts (receiver binding: the reporter cannot alter what was sent), and
// the reporter's signature proves that the recipient named in the headers
// made the report. Once disclosed, the messages are not deniable to third
// parties; that trade-off is deliberate (spec 01-overview §4.4).
package disclosure

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/protocol/envelope"
	"github.com/parley-chat/parley/protocol/franking"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the version byte that starts a disclosure's encoding.
const Version = 1

// Reason is the reporter's reason code. Codes other than the ones below are
// malformed.
type Reason uint8

// Reason codes (spec 05-disclosures §2).
const (
	ReasonSpam       Reason = 1 // unsolicited or automated messages
	ReasonHarassment Reason = 2 // abuse, threats, harassment
	ReasonIllegal    Reason = 3 // content the reporter believes is illegal
	ReasonOther      Reason = 4 // anything else; the text says what
)

// maxReason is the highest defined reason code.
const maxReason = ReasonOther

// String returns the reason's name, or "reason(N)" for an undefined code.
func (r Reason) String() string {
	switch r {
	case ReasonSpam:
		return "spam"
	case ReasonHarassment:
		return "harassment"
	case ReasonIllegal:
		return "illegal"
	case ReasonOther:
		return "other"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

func (r Reason) valid() bool { return r >= 1 && r <= maxReason }

// Item is one disclosed message: its stamped header, its content and the
// franking key that opens the header's commitment.
type Item struct {
	Header      envelope.Header
	Stamp       stamp.Stamp
	Plaintext   []byte       // the content as Open returned it, at most wire.MaxPlaintext bytes
	FrankingKey franking.Key // revealed by the disclosure
}

// Disclosure is a signed report of 1 to wire.MaxDisclosureItems messages of
// one room, all from the same sender to the reporter.
type Disclosure struct {
	Reporter keys.TicketID  // the reporter's ticket signing key: the recipient of every item
	Reason   Reason         // why the reporter reports
	Text     string         // the reporter's words, valid UTF-8, at most wire.MaxReasonText bytes
	Time     int64          // when the reporter signed, Unix milliseconds
	Items    []Item         // the disclosed messages, 1 to wire.MaxDisclosureItems
	Sig      keys.Signature // the reporter's signature under wire.LabelDisclosure
}

// Check names one of Verify's checks (spec 05-disclosures §4), in the order
// Verify runs them.
type Check uint8

// Verify's checks. Each has one sentinel error.
const (
	CheckMalformed  Check = iota + 1 // ErrMalformed
	CheckRecipient                   // ErrNotRecipient
	CheckCommitment                  // ErrBadCommitment
	CheckStamp                       // ErrBadStamp
	CheckStampTime                   // ErrFromFuture: the stamp's time
	CheckAge                         // ErrExpired
	CheckSignature                   // ErrBadSignature
	CheckTime                        // ErrFromFuture: the disclosure's time
)

// String returns the check's name as the spec and the vectors write it.
func (c Check) String() string {
	switch c {
	case CheckMalformed:
		return "malformed"
	case CheckRecipient:
		return "not_recipient"
	case CheckCommitment:
		return "bad_commitment"
	case CheckStamp:
		return "bad_stamp"
	case CheckStampTime, CheckTime:
		return "from_future"
	case CheckAge:
		return "expired"
	case CheckSignature:
		return "bad_signature"
	}
	return fmt.Sprintf("check(%d)", uint8(c))
}

// Errors, one per check. A *VerifyError unwraps to exactly one of them.
var (
	// ErrMalformed: no items or too many, items from different rooms or
	// senders, a repeated sequence number, an undefined reason or content
	// type, or text or plaintext over its limit.
	ErrMalformed = errors.New("disclosure: malformed")
	// ErrNotRecipient: an item's recipient is not the reporter.
	ErrNotRecipient = errors.New("disclosure: reporter is not the recipient")
	// ErrBadCommitment: an item's plaintext and franking key do not open its
	// header's commitment.
	ErrBadCommitment = errors.New("disclosure: franking commitment does not match")
	// ErrBadStamp: an item's stamp is not the stamping node's stamp of its
	// header.
	ErrBadStamp = errors.New("disclosure: bad stamp")
	// ErrFromFuture: a stamp's time, or the disclosure's, lies more than
	// wire.MaxClockSkew after now.
	ErrFromFuture = errors.New("disclosure: time in the future")
	// ErrExpired: an item was stamped more than wire.MaxDisclosureAge ago.
	ErrExpired = errors.New("disclosure: message too old to report")
	// ErrBadSignature: the reporter's signature does not verify.
	ErrBadSignature = errors.New("disclosure: bad reporter signature")
)

var checkErr = map[Check]error{
	CheckMalformed:  ErrMalformed,
	CheckRecipient:  ErrNotRecipient,
	CheckCommitment: ErrBadCommitment,
	CheckStamp:      ErrBadStamp,
	CheckStampTime:  ErrFromFuture,
	CheckAge:        ErrExpired,
	CheckSignature:  ErrBadSignature,
	CheckTime:       ErrFromFuture,
}

// VerifyError is the error Verify and New return: which check failed, on
// which item (-1 if the check is not about one item), and why. Unwrap
// yields the check's sentinel, wrapped with detail.
type VerifyError struct {
	Check Check
	Item  int
	Err   error
}

func (e *VerifyError) Error() string {
	if e.Item < 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (item %d)", e.Err, e.Item)
}

// Unwrap returns the error that errors.Is matches against the sentinels.
func (e *VerifyError) Unwrap() error { return e.Err }

func fail(c Check, item int, format string, args ...any) *VerifyError {
	err := checkErr[c]
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{err}, args...)...)
	}
	return &VerifyError{Check: c, Item: item, Err: err}
}

// ItemFromOpened builds the Item that discloses e, which the caller opened
// as o. e must be stamped (the error then matches envelope.ErrUnstamped),
// and o must belong to e (ErrBadCommitment). The item holds copies.
func ItemFromOpened(e *envelope.Envelope, o envelope.Opened) (Item, error) {
	if e.Stamp == nil {
		return Item{}, fmt.Errorf("disclosure: %w", envelope.ErrUnstamped)
	}
	if !franking.Verify(&o.FrankingKey, o.Content, e.Header.Commitment) {
		return Item{}, ErrBadCommitment
	}
	s := *e.Stamp
	s.Path = slices.Clone(s.Path)
	return Item{
		Header:      e.Header,
		Stamp:       s,
		Plaintext:   bytes.Clone(o.Content),
		FrankingKey: o.FrankingKey,
	}, nil
}

// New builds and signs a disclosure of items by the holder of reporter, at
// now. It runs the checks that need neither the stamping node nor a clock
// (structure, recipient, commitments) and returns a *VerifyError if one
// fails. The disclosure shares the items' plaintexts and paths.
func New(reporter keys.TicketKeys, reason Reason, text string, now time.Time, items []Item) (*Disclosure, error) {
	d := &Disclosure{
		Reporter: reporter.Public().Sign,
		Reason:   reason,
		Text:     text,
		Time:     now.UnixMilli(),
		Items:    slices.Clone(items),
	}
	if err := d.checkStructure(); err != nil {
		return nil, err
	}
	for i := range d.Items {
		if err := d.checkOffline(i); err != nil {
			return nil, err
		}
	}
	d.Sig = reporter.Sign(wire.LabelDisclosure, d.signedBytes())
	return d, nil
}

// Accused returns the room and the sender's ticket that the disclosure
// reports: those of its first item (Verify checks that all items agree).
// It returns zero values for a disclosure without items.
func (d *Disclosure) Accused() (keys.RoomID, keys.TicketID) {
	if len(d.Items) == 0 {
		return keys.RoomID{}, keys.TicketID{}
	}
	return d.Items[0].Header.Room, d.Items[0].Header.Sender
}

// Verify checks d against the stamping node (the accused sender's home
// node, which the verifier knows from the pairing, never from the stamp
// itself) at now. It runs these checks, in this order, and reports the
// first that fails as a *VerifyError (spec 05-disclosures §4):
//
//  1. structure (ErrMalformed);
//  2. for each item in order: the recipient is the reporter
//     (ErrNotRecipient); the plaintext and franking key open the
//     commitment (ErrBadCommitment); the stamp is stampingNode's stamp of
//     the header (ErrBadStamp); the stamp's time is at most
//     wire.MaxClockSkew after now (ErrFromFuture) and at most
//     wire.MaxDisclosureAge before it (ErrExpired);
//  3. the reporter's signature (ErrBadSignature);
//  4. the disclosure's time is at most wire.MaxClockSkew after now
//     (ErrFromFuture).
//
// Verify needs no network and no secret: any operator can run it offline.
func Verify(d *Disclosure, stampingNode keys.NodeID, now time.Time) error {
	if err := d.checkStructure(); err != nil {
		return err
	}
	nowMs := now.UnixMilli()
	skew, age := wire.MaxClockSkew.Milliseconds(), wire.MaxDisclosureAge.Milliseconds()
	// Items of one batch share a signed root: verify each signature once
	// (spec 04-stamps §4 allows the cache).
	verified := make(map[batchKey]bool, 1)
	for i := range d.Items {
		it := &d.Items[i]
		if err := d.checkOffline(i); err != nil {
			return err
		}
		if err := verifyStamp(it, stampingNode, verified); err != nil {
			return &VerifyError{Check: CheckStamp, Item: i, Err: fmt.Errorf("%w: %w", ErrBadStamp, err)}
		}
		// Compare against now±limit rather than subtracting a signed but
		// arbitrary stamp time, which could overflow.
		if it.Stamp.Time > nowMs+skew {
			return fail(CheckStampTime, i, "stamped at %d, now %d", it.Stamp.Time, nowMs)
		}
		if it.Stamp.Time < nowMs-age {
			return fail(CheckAge, i, "stamped at %d, now %d, limit %v", it.Stamp.Time, nowMs, wire.MaxDisclosureAge)
		}
	}
	if !d.Reporter.Verify(wire.LabelDisclosure, d.Sig, d.signedBytes()) {
		return fail(CheckSignature, -1, "")
	}
	if d.Time > nowMs+skew {
		return fail(CheckTime, -1, "signed at %d, now %d", d.Time, nowMs)
	}
	return nil
}

// checkStructure is Verify's check 1.
func (d *Disclosure) checkStructure() error {
	if n := len(d.Items); n == 0 || n > wire.MaxDisclosureItems {
		return fail(CheckMalformed, -1, "%d items (want 1 to %d)", n, wire.MaxDisclosureItems)
	}
	if !d.Reason.valid() {
		return fail(CheckMalformed, -1, "undefined reason code %d", uint8(d.Reason))
	}
	if len(d.Text) > wire.MaxReasonText || !utf8.ValidString(d.Text) {
		return fail(CheckMalformed, -1, "text is %d bytes or not UTF-8 (limit %d)", len(d.Text), wire.MaxReasonText)
	}
	first := &d.Items[0].Header
	for i := range d.Items {
		h := &d.Items[i].Header
		switch {
		case h.ContentType < 1 || h.ContentType > wire.MaxContentType:
			return fail(CheckMalformed, i, "content type %d", h.ContentType)
		case len(d.Items[i].Plaintext) > wire.MaxPlaintext:
			return fail(CheckMalformed, i, "plaintext of %d bytes (limit %d)", len(d.Items[i].Plaintext), wire.MaxPlaintext)
		case h.Room != first.Room:
			return fail(CheckMalformed, i, "item from another room than item 0")
		case h.Sender != first.Sender:
			return fail(CheckMalformed, i, "item from another sender than item 0")
		}
		for j := range i {
			if d.Items[j].Header.Seq == h.Seq {
				return fail(CheckMalformed, i, "sequence number %d repeats item %d", h.Seq, j)
			}
		}
	}
	return nil
}

// checkOffline runs the checks of item i that need no stamping node: the
// recipient and the commitment.
func (d *Disclosure) checkOffline(i int) error {
	it := &d.Items[i]
	if it.Header.Recipient != d.Reporter {
		return fail(CheckRecipient, i, "recipient %s, reporter %s", it.Header.Recipient, d.Reporter)
	}
	if !franking.Verify(&it.FrankingKey, it.Plaintext, it.Header.Commitment) {
		return fail(CheckCommitment, i, "")
	}
	return nil
}

// batchKey identifies a verified batch signature.
type batchKey struct {
	node  keys.NodeID
	time  int64
	count uint32
	root  [32]byte
	sig   keys.Signature
}

// verifyStamp checks the item's stamp against node, skipping the signature
// check for a batch already in verified and adding the batch if it passes.
func verifyStamp(it *Item, node keys.NodeID, verified map[batchKey]bool) error {
	leaf, _ := it.Header.MarshalBinary()
	s := &it.Stamp
	root, err := s.Root(wire.LabelEnvelopeHeader, leaf)
	k := batchKey{s.Node, s.Time, s.Count, root, s.Sig}
	if err == nil && s.Node == node && verified[k] {
		return nil
	}
	e := envelope.Envelope{Header: it.Header, Stamp: s}
	if err := e.VerifyStamp(node); err != nil {
		return err
	}
	verified[k] = true
	return nil
}
