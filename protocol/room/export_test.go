package room

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"

	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
)

// Step exports step to the tests in package room_test.
var Step = step

// StepHKDF is step written directly with crypto/hkdf, as spec
// 06-room-keys §3 states it; TestStepIsHKDF checks that step agrees.
func StepHKDF(ck *[32]byte) (mk keys.MessageKey, next [32]byte) {
	m := mustHKDF(hkdf.Expand(sha256.New, ck[:], wire.LabelRoomMessage, messageKeySize))
	copy(mk.Key[:], m[:32])
	copy(mk.Nonce[:], m[32:])
	h := hmac.New(sha256.New, ck[:])
	h.Write(wire.Labeled(wire.LabelRoomNext))
	h.Sum(next[:0])
	return mk, next
}
