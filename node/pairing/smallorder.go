package pairing

import "crypto/subtle"

// smallOrderPoints are the X25519 public keys (u-coordinates, little
// endian) of small order, so that X25519 with any scalar gives zero: the
// five canonical values 0, 1, the two points of order 8 and p−1, and the
// non-canonical encodings p and p+1 of 0 and 1 (no other value below 2^255
// is a second encoding of a small-order point). X25519 ignores the top bit,
// and so does smallOrder. The list is libsodium's (has_small_order in
// crypto_scalarmult/curve25519/ref10); TestSmallOrder checks each entry
// and compares with the scalar multiplication.
var smallOrderPoints = [7][32]byte{
	{},
	{0: 1},
	{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
		0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
	{0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef, 0x5b,
		0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
	pMinus(1),
	pMinus(0),
	pMinus(-1),
}

// pMinus returns p − k (p = 2^255 − 19) for a small k, little endian.
func pMinus(k int) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = 0xff
	}
	b[31] = 0x7f
	b[0] = byte(0xed - k)
	return b
}

// smallOrder reports whether the X25519 public key u has small order: the
// Diffie-Hellman output with it would be all zeros. It costs a few
// comparisons, where the scalar multiplication it replaces costs tens of
// microseconds per ticket request. Public keys, so the comparison need not
// be constant time; it is anyway.
func smallOrder(u [32]byte) bool {
	u[31] &= 0x7f
	found := 0
	for i := range smallOrderPoints {
		found |= subtle.ConstantTimeCompare(u[:], smallOrderPoints[i][:])
	}
	return found == 1
}
