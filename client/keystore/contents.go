package keystore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"time"

	"github.com/parley-chat/parley/protocol/keys"
)

// MaxRoomNameSize bounds the length of a name in Contents.Rooms.
const MaxRoomNameSize = 256

// Contents is everything a keystore holds. It is encrypted as JSON; the
// struct tags are the file's field names.
//
// Contents and Ticket do not print their secrets: fmt's verbs, String,
// GoString and slog all show a redacted summary. Do not marshal them with
// encoding/json anywhere but in this package.
type Contents struct {
	// NodeURL is the base URL of the account's node (http or https).
	NodeURL string `json:"node_url"`
	// Username is the account's name on its node.
	Username string `json:"username"`
	// AccountSeed is the 32-byte seed of the account identity key
	// (keys.AccountKey.Seed), or empty before one is made.
	AccountSeed []byte `json:"account_seed"`
	// Token is the session token from the last login, and TokenExpires its
	// expiry as the node reported it.
	Token        string    `json:"token"`
	TokenExpires time.Time `json:"token_expires"`
	// Tickets are the private keys of the current lottery tickets, by
	// ticket ID (its signing public key), kept while their rooms may still
	// need disclosures signed.
	Tickets map[keys.TicketID]Ticket `json:"tickets"`
	// Rooms holds each room's state encoding (spec 06-room-keys §5), or any
	// other opaque blob the room code keeps, under a non-empty name of at
	// most MaxRoomNameSize bytes, typically the room ID's text form.
	Rooms map[string][]byte `json:"rooms"`
	// SyncPosition is the position the client has synced to. It never
	// goes back.
	SyncPosition uint64 `json:"sync_position"`
}

// Ticket is the private half of one lottery ticket.
type Ticket struct {
	// Epoch is the lottery epoch the ticket was issued for.
	Epoch uint64 `json:"epoch"`
	// SignSeed and DHSeed are the seeds keys.TicketKeys.Seeds returned.
	SignSeed []byte `json:"sign_seed"`
	DHSeed   []byte `json:"dh_seed"`
}

var (
	_ fmt.Formatter  = Contents{}
	_ fmt.GoStringer = Contents{}
	_ slog.LogValuer = Contents{}
	_ json.Marshaler = Contents{}
	_ fmt.Formatter  = Ticket{}
	_ fmt.GoStringer = Ticket{}
	_ slog.LogValuer = Ticket{}
	_ json.Marshaler = Ticket{}
)

// NewTicket returns the keystore entry for ticket keys k issued for epoch.
func NewTicket(epoch uint64, k keys.TicketKeys) Ticket {
	sign, dh := k.Seeds()
	return Ticket{Epoch: epoch, SignSeed: sign, DHSeed: dh}
}

// Keys rebuilds the ticket's private keys.
func (t Ticket) Keys() (keys.TicketKeys, error) {
	return keys.TicketKeysFromSeeds(t.SignSeed, t.DHSeed)
}

// AccountKey rebuilds the account identity key; ErrNoAccount if there is none.
func (c Contents) AccountKey() (keys.AccountKey, error) {
	if len(c.AccountSeed) == 0 {
		return keys.AccountKey{}, ErrNoAccount
	}
	return keys.AccountKeyFromSeed(c.AccountSeed)
}

// Validate reports every problem with c at once, wrapped in
// ErrInvalidContents. Its messages name fields, never their secret values.
func (c Contents) Validate() error {
	var errs []error
	if c.NodeURL != "" {
		u, err := url.Parse(c.NodeURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("node URL is not an absolute http or https URL"))
		}
	}
	if n := len(c.AccountSeed); n != 0 && n != keys.SeedSize {
		errs = append(errs, fmt.Errorf("account seed is %d bytes, want %d", n, keys.SeedSize))
	}
	if y := c.TokenExpires.Year(); y < 0 || y > 9999 {
		errs = append(errs, fmt.Errorf("token expiry year %d is outside [0, 9999]", y))
	}
	for _, id := range slices.SortedFunc(maps.Keys(c.Tickets), func(a, b keys.TicketID) int { return bytes.Compare(a[:], b[:]) }) {
		if err := c.Tickets[id].check(id); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Rooms)) {
		if name == "" || len(name) > MaxRoomNameSize {
			errs = append(errs, fmt.Errorf("room name is %d bytes, want 1 to %d", len(name), MaxRoomNameSize))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidContents, errors.Join(errs...))
	}
	return nil
}

// check reports whether t's seeds are well formed and belong to ticket id.
func (t Ticket) check(id keys.TicketID) error {
	k, err := t.Keys()
	if err != nil {
		return fmt.Errorf("ticket %s: %w", id, err)
	}
	if !keys.Equal(k.Public().Sign, id) {
		return fmt.Errorf("ticket %s: seeds belong to another ticket", id)
	}
	return nil
}

// clone returns a deep copy of c.
func (c Contents) clone() Contents {
	c.AccountSeed = bytes.Clone(c.AccountSeed)
	if c.Tickets != nil {
		m := make(map[keys.TicketID]Ticket, len(c.Tickets))
		for id, t := range c.Tickets {
			m[id] = t.clone()
		}
		c.Tickets = m
	}
	if c.Rooms != nil {
		m := make(map[string][]byte, len(c.Rooms))
		for name, b := range c.Rooms {
			m[name] = bytes.Clone(b)
		}
		c.Rooms = m
	}
	return c
}

func (t Ticket) clone() Ticket {
	t.SignSeed = bytes.Clone(t.SignSeed)
	t.DHSeed = bytes.Clone(t.DHSeed)
	return t
}

// wipe overwrites c's byte slices with zeros, best effort.
func (c *Contents) wipe() {
	clear(c.AccountSeed)
	for _, t := range c.Tickets {
		t.wipe()
	}
	for _, b := range c.Rooms {
		clear(b)
	}
	*c = Contents{}
}

func (t Ticket) wipe() {
	clear(t.SignSeed)
	clear(t.DHSeed)
}

// String returns a summary of c without its secrets.
func (c Contents) String() string {
	set := func(b bool) string {
		if b {
			return "[redacted]"
		}
		return "[none]"
	}
	return fmt.Sprintf("keystore.Contents{NodeURL:%q, Username:%q, AccountSeed:%s, Token:%s, TokenExpires:%s, Tickets:%d, Rooms:%d, SyncPosition:%d}",
		redactURL(c.NodeURL), c.Username, set(len(c.AccountSeed) > 0), set(c.Token != ""),
		c.TokenExpires.Format(time.RFC3339), len(c.Tickets), len(c.Rooms), c.SyncPosition)
}

// redactURL drops a password from a URL's user information.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "[unparsable URL]"
	}
	return u.Redacted()
}

// GoString is String, so that %#v does not print secrets either.
func (c Contents) GoString() string { return c.String() }

// Format writes String for every verb.
func (c Contents) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue logs the redacted summary.
func (c Contents) LogValue() slog.Value { return slog.StringValue(c.String()) }

// MarshalJSON refuses: Contents is encoded only inside the encrypted file.
func (Contents) MarshalJSON() ([]byte, error) { return nil, errMarshal }

// String returns a summary of t without its seeds.
func (t Ticket) String() string {
	return fmt.Sprintf("keystore.Ticket{Epoch:%d, seeds:[redacted]}", t.Epoch)
}

// GoString is String, so that %#v does not print the seeds either.
func (t Ticket) GoString() string { return t.String() }

// Format writes String for every verb.
func (t Ticket) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(t.String())) }

// LogValue logs the redacted summary.
func (t Ticket) LogValue() slog.Value { return slog.StringValue(t.String()) }

// MarshalJSON refuses: a Ticket is encoded only inside the encrypted file.
func (Ticket) MarshalJSON() ([]byte, error) { return nil, errMarshal }

var errMarshal = errors.New("keystore: secrets are not marshaled outside the encrypted file")

// plainContents and plainTicket have Contents' and Ticket's fields without
// their methods: they are what the encrypted file holds.
type (
	plainContents struct {
		NodeURL      string                        `json:"node_url"`
		Username     string                        `json:"username"`
		AccountSeed  []byte                        `json:"account_seed"`
		Token        string                        `json:"token"`
		TokenExpires time.Time                     `json:"token_expires"`
		Tickets      map[keys.TicketID]plainTicket `json:"tickets"`
		Rooms        map[string][]byte             `json:"rooms"`
		SyncPosition uint64                        `json:"sync_position"`
	}
	plainTicket Ticket
)

func (c *Contents) plain() plainContents {
	p := plainContents{
		NodeURL:      c.NodeURL,
		Username:     c.Username,
		AccountSeed:  c.AccountSeed,
		Token:        c.Token,
		TokenExpires: c.TokenExpires,
		Rooms:        c.Rooms,
		SyncPosition: c.SyncPosition,
	}
	if c.Tickets != nil {
		p.Tickets = make(map[keys.TicketID]plainTicket, len(c.Tickets))
		for id, t := range c.Tickets {
			p.Tickets[id] = plainTicket(t)
		}
	}
	return p
}

func (p *plainContents) contents() Contents {
	c := Contents{
		NodeURL:      p.NodeURL,
		Username:     p.Username,
		AccountSeed:  p.AccountSeed,
		Token:        p.Token,
		TokenExpires: p.TokenExpires,
		Rooms:        p.Rooms,
		SyncPosition: p.SyncPosition,
	}
	if p.Tickets != nil {
		c.Tickets = make(map[keys.TicketID]Ticket, len(p.Tickets))
		for id, t := range p.Tickets {
			c.Tickets[id] = Ticket(t)
		}
	}
	return c
}

// encodeContents returns the plaintext of a keystore file.
func encodeContents(c *Contents) ([]byte, error) {
	b, err := json.Marshal(c.plain())
	if err != nil {
		// Only a bug gets here; the error names no value.
		return nil, fmt.Errorf("keystore: encoding contents: %w", err)
	}
	return b, nil
}

// decodeContents decodes and validates the plaintext of a keystore file.
// Its errors do not include the plaintext or the decoder's message, which
// may quote it.
func decodeContents(b []byte) (Contents, error) {
	var p plainContents
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return Contents{}, fmt.Errorf("%w: contents do not decode", ErrCorrupt)
	}
	if d.More() {
		return Contents{}, fmt.Errorf("%w: trailing data after contents", ErrCorrupt)
	}
	c := p.contents()
	if err := c.Validate(); err != nil {
		return Contents{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return c, nil
}
