// Package noderecord implements the signed node record (spec 11-federation
// §3): what a node tells the rest of its network about itself — its ID, the
// network it belongs to, where it listens, which software and protocol
// versions it runs and a summary of its policy — signed with its node key.
//
// Nodes gossip their records; a receiver keeps the record with the highest
// sequence number per node and uses its addresses to reach nodes beyond its
// bootstrap peers. The record is pure data: addresses are binary multiaddrs
// that this package bounds but does not interpret (node/p2p does).
package noderecord

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Version is the encoding version of a Record.
const Version = 1

// Errors returned by Sign and Verify. Each is wrapped with detail; match with
// errors.Is. Parse returns a *wire.ParseError (wire.ErrMalformed) instead.
var (
	// ErrInvalid: a field is out of range (Sign and Check).
	ErrInvalid = errors.New("noderecord: invalid record")
	// ErrBadSignature: the signature is not the named node's over the record.
	ErrBadSignature = errors.New("noderecord: bad signature")
	// ErrWrongNetwork: the record belongs to another network.
	ErrWrongNetwork = errors.New("noderecord: wrong network")
	// ErrFuture: the record's issue time lies beyond the allowed clock skew.
	ErrFuture = errors.New("noderecord: issued in the future")
	// ErrExpired: the record was issued more than wire.MaxRecordAge ago.
	ErrExpired = errors.New("noderecord: expired")
)

// Registration is a node's account registration mode.
type Registration uint8

// Registration modes.
const (
	RegistrationOpen   Registration = 0 // anyone may create an account
	RegistrationInvite Registration = 1 // accounts need an invitation
	RegistrationClosed Registration = 2 // no new accounts
)

var registrationNames = [...]string{"open", "invite", "closed"}

// String returns "open", "invite" or "closed".
func (r Registration) String() string {
	if int(r) < len(registrationNames) {
		return registrationNames[r]
	}
	return fmt.Sprintf("registration(%d)", uint8(r))
}

// ParseRegistration parses the text form of a Registration.
func ParseRegistration(s string) (Registration, error) {
	for i, n := range registrationNames {
		if n == s {
			return Registration(i), nil
		}
	}
	return 0, fmt.Errorf("%w: registration mode %q (want open, invite or closed)", ErrInvalid, s)
}

// Policy is the summary of a node's policy that its record advertises, so
// that users and operators of other nodes can see what it allows. Zero
// limits mean "not advertised".
type Policy struct {
	Registration      Registration
	MessagesPerMinute uint32 // per account
	TicketsPerHour    uint32 // lottery tickets per account
	MaxBlobBytes      uint64 // largest blob the node accepts from its users
}

// Record is a node's signed description of itself.
type Record struct {
	Node      keys.NodeID // the node (its libp2p peer ID)
	Network   string      // network ID, [a-z0-9-]{1,MaxNetworkID}
	Seq       uint64      // increases with every record the node issues
	Issued    int64       // issue time, Unix seconds
	Addrs     [][]byte    // binary multiaddrs the node listens on, at most MaxRecordAddrs of MaxRecordAddr bytes
	Software  string      // software name and version, printable, at most MaxRecordSoftware bytes
	Protocols []string    // supported protocol versions ("deliver/1"), printable, at most MaxRecordProtocols
	Policy    Policy
	Sig       keys.Signature
}

// IssuedAt returns the issue time as a time.Time.
func (r *Record) IssuedAt() time.Time { return time.Unix(r.Issued, 0) }

// ValidNetworkID reports whether s is a well-formed network ID: 1 to
// wire.MaxNetworkID bytes of lowercase letters, digits and '-'.
func ValidNetworkID(s string) bool {
	if len(s) == 0 || len(s) > wire.MaxNetworkID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) {
			return false
		}
	}
	return true
}

// check returns the first field of r that is out of range, as a description,
// or "". It covers everything but the signature.
func (r *Record) check() (field, problem string) {
	switch {
	case !ValidNetworkID(r.Network):
		return "network", fmt.Sprintf("%q is not 1 to %d bytes of [a-z0-9-]", r.Network, wire.MaxNetworkID)
	case len(r.Addrs) > wire.MaxRecordAddrs:
		return "addrs", fmt.Sprintf("%d addresses (at most %d)", len(r.Addrs), wire.MaxRecordAddrs)
	case len(r.Software) > wire.MaxRecordSoftware || !printable(r.Software):
		return "software", fmt.Sprintf("not printable or longer than %d bytes", wire.MaxRecordSoftware)
	case len(r.Protocols) > wire.MaxRecordProtocols:
		return "protocols", fmt.Sprintf("%d protocols (at most %d)", len(r.Protocols), wire.MaxRecordProtocols)
	case r.Policy.Registration > RegistrationClosed:
		return "registration", fmt.Sprintf("unknown mode %d", r.Policy.Registration)
	}
	for _, a := range r.Addrs {
		if len(a) == 0 || len(a) > wire.MaxRecordAddr {
			return "addrs", fmt.Sprintf("address of %d bytes (1 to %d)", len(a), wire.MaxRecordAddr)
		}
	}
	for _, p := range r.Protocols {
		if len(p) == 0 || len(p) > wire.MaxRecordProtocol || !printable(p) {
			return "protocols", fmt.Sprintf("protocol %q is not 1 to %d printable bytes", p, wire.MaxRecordProtocol)
		}
	}
	return "", ""
}

// Check reports whether every field of r is in range (not its signature).
func (r *Record) Check() error {
	if f, p := r.check(); f != "" {
		return fmt.Errorf("%w: %s: %s", ErrInvalid, f, p)
	}
	return nil
}

// appendBody appends the encoding of r without its signature.
func (r *Record) appendBody(e *wire.Encoder) {
	e.U8(Version)
	e.String16(r.Network)
	e.Fixed(r.Node[:])
	e.U64(r.Seq)
	e.I64(r.Issued)
	e.Count(len(r.Addrs))
	for _, a := range r.Addrs {
		e.Bytes16(a)
	}
	e.String16(r.Software)
	e.Count(len(r.Protocols))
	for _, p := range r.Protocols {
		e.String16(p)
	}
	e.U8(uint8(r.Policy.Registration))
	e.U32(r.Policy.MessagesPerMinute)
	e.U32(r.Policy.TicketsPerHour)
	e.U64(r.Policy.MaxBlobBytes)
}

func (r *Record) body() []byte {
	e := wire.NewEncoder(256)
	r.appendBody(e)
	return e.Bytes()
}

// Sign checks r, sets r.Node to k's ID and signs r under
// "parley/v1/node-record" (spec 11-federation §3.2).
func Sign(k keys.NodeKey, r *Record) error {
	if err := r.Check(); err != nil {
		return err
	}
	r.Node = k.Public()
	r.Sig = k.Sign(wire.LabelNodeRecord, r.body())
	return nil
}

// Verify checks that r is signed by the node it names, belongs to network,
// was not issued more than maxSkew after now nor more than wire.MaxRecordAge
// before it. It returns nil or an error matching ErrInvalid,
// ErrWrongNetwork, ErrBadSignature, ErrFuture or ErrExpired.
func Verify(r *Record, network string, now time.Time, maxSkew time.Duration) error {
	if err := r.Check(); err != nil {
		return err
	}
	if r.Network != network {
		return fmt.Errorf("%w: record of %q, this is %q", ErrWrongNetwork, r.Network, network)
	}
	if !r.Node.Verify(wire.LabelNodeRecord, r.Sig, r.body()) {
		return fmt.Errorf("%w: record of %s", ErrBadSignature, r.Node)
	}
	issued := r.IssuedAt()
	if issued.After(now.Add(maxSkew)) {
		return fmt.Errorf("%w: issued %s, now %s", ErrFuture, issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if issued.Before(now.Add(-wire.MaxRecordAge)) {
		return fmt.Errorf("%w: issued %s, now %s", ErrExpired, issued.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// MarshalBinary returns the canonical encoding of r (spec 11-federation
// §3.1). r must pass Check.
func (r *Record) MarshalBinary() ([]byte, error) {
	if err := r.Check(); err != nil {
		return nil, err
	}
	e := wire.NewEncoder(320)
	r.appendBody(e)
	e.Fixed(r.Sig[:])
	return e.Bytes(), nil
}

// Parse decodes a record, checking its structure and bounds (not its
// signature, network or time: see Verify). Every error is a
// *wire.ParseError.
func Parse(b []byte) (*Record, error) {
	const what = "node record"
	if len(b) > wire.MaxRecordSize {
		return nil, &wire.ParseError{What: what, Reason: fmt.Sprintf("%d bytes (at most %d)", len(b), wire.MaxRecordSize)}
	}
	d := wire.NewDecoder(what, b)
	r := &Record{}
	d.Version(Version)
	r.Network = d.Field("network").String16(wire.MaxNetworkID)
	d.Field("node").Fixed(r.Node[:])
	r.Seq = d.Field("seq").U64()
	r.Issued = d.Field("issued").I64()
	if n := d.Field("addrs").Count(wire.MaxRecordAddrs, 2); n > 0 {
		r.Addrs = make([][]byte, n)
		for i := range r.Addrs {
			r.Addrs[i] = d.Bytes16(wire.MaxRecordAddr)
		}
	}
	r.Software = d.Field("software").String16(wire.MaxRecordSoftware)
	if n := d.Field("protocols").Count(wire.MaxRecordProtocols, 2); n > 0 {
		r.Protocols = make([]string, n)
		for i := range r.Protocols {
			r.Protocols[i] = d.String16(wire.MaxRecordProtocol)
		}
	}
	r.Policy.Registration = Registration(d.Field("registration").U8())
	r.Policy.MessagesPerMinute = d.Field("messages_per_minute").U32()
	r.Policy.TicketsPerHour = d.Field("tickets_per_hour").U32()
	r.Policy.MaxBlobBytes = d.Field("max_blob_bytes").U64()
	d.Field("sig").Fixed(r.Sig[:])
	if err := d.Finish(); err != nil {
		return nil, err
	}
	if f, p := r.check(); f != "" {
		return nil, wire.Errorf(what, f, "%s", p)
	}
	return r, nil
}
