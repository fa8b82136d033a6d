// Package protocol is Parley's pure protocol core: the wire formats, keys,
// franking, the pairing lottery, blob encryption and the room ratchet, in
// the subpackages of this directory.
//
// Nothing under protocol/ does I/O, reads the clock or draws its own
// randomness: time and randomness are arguments (a now time.Time, an
// io.Reader), so every function is deterministic, fuzzable and usable by
// any client, a browser build included. The packages import only the
// standard library, golang.org/x/crypto and each other; deps_test.go
// enforces that.
package protocol
