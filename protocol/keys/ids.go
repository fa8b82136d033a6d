package keys

// RoomID names a room: a hash of the two tickets that were paired (spec
// 06-room-keys §1). Text form "room_" + base64url.
type RoomID [32]byte

const roomPrefix = "room_"

func (r RoomID) String() string { return formatKey(roomPrefix, r) }

// ParseRoomID parses the text form of a RoomID.
func ParseRoomID(s string) (RoomID, error) {
	k, err := parseKey(roomPrefix, s)
	return RoomID(k), err
}

// MarshalText implements encoding.TextMarshaler.
func (r RoomID) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *RoomID) UnmarshalText(b []byte) error {
	k, err := ParseRoomID(string(b))
	if err == nil {
		*r = k
	}
	return err
}

// MessageKey is the one-time AEAD key and nonce that a room's ratchet
// derives for one message (spec 06-room-keys §3). It is used once and then
// deleted; it cannot be compared with == and does not print.
type MessageKey struct {
	_     noCompare
	Key   [32]byte
	Nonce [24]byte
}

func (MessageKey) String() string { return "[message key]" }

// GoString keeps %#v from printing key material.
func (MessageKey) GoString() string { return "[message key]" }

// Wipe overwrites the key with zeros.
func (m *MessageKey) Wipe() {
	m.Key = [32]byte{}
	m.Nonce = [24]byte{}
}
