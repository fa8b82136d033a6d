// Package keystore keeps a Parley client's secrets in one file on disk,
// encrypted under a passphrase.
//
// The keystore holds everything secret a client has (see Contents): the node
// URL and username, the account identity key's seed, the session token and
// its expiry, the private seeds of the current lottery tickets, each room's
// state encoding (spec 06-room-keys §5) under a name, and the sync position,
// which only moves forward.
//
// # Use
//
// Create writes a new keystore and never overwrites one (ErrExists). Open
// decrypts it and holds it exclusively until Close: a second Open of the same
// file, from this process or another, fails with ErrLocked, so two parley
// processes can never advance the same room ratchet or sync position from
// diverging copies. The mutators (Update, SetSession, PutTicket, PutRoom, ...)
// change the contents in memory; Save writes them. The derived key (never the
// passphrase) stays in memory between Saves, so a Save costs no key
// derivation.
//
// Passphrase finds the passphrase for scripts and people: a file, else an
// environment variable (PARLEY_PASSPHRASE by default), else a prompt such as
// TerminalPrompt.
//
// # File format (version 1)
//
// All integers are big-endian.
//
//	offset    size  field
//	0         8     magic "PARLEYKS"
//	8         1     format version, 1
//	9         1     KDF id, 1 = argon2id (RFC 9106)
//	10        4     argon2id time (passes), 1..MaxKDFTime
//	14        4     argon2id memory in KiB, 8*threads..MaxKDFMemoryKiB
//	18        1     argon2id threads (lanes), 1..MaxKDFThreads
//	19        1     salt length s, MinSaltSize..MaxSaltSize
//	20        s     salt, random, chosen when the key is (Create,
//	                ChangePassphrase, a KDF upgrade)
//	20+s      24    XChaCha20-Poly1305 nonce, random, fresh on every save
//	44+s      rest  XChaCha20-Poly1305 ciphertext and 16-byte tag
//
// The key is argon2id(passphrase, salt, time, memory, threads) with a 32-byte
// output. The plaintext is the JSON encoding of Contents (field names in its
// struct tags; unknown fields are refused, so an older client never rewrites
// a newer file and drops what it did not understand). The associated data is
// every header byte (offsets 0 to 44+s), so changing the version, the KDF or
// its parameters, the salt or the nonce makes the file fail to decrypt: cost
// parameters cannot be downgraded without detection.
//
// A file larger than MaxFileSize, a header that is truncated or names an
// unknown version or KDF, or parameters outside the bounds above are refused
// with ErrCorrupt before any key derivation, so a hostile file cannot make
// Open allocate more than MaxKDFMemoryKiB. A file that fails to decrypt
// (wrong passphrase, or damage past the header) is ErrWrongPassphrase.
//
// # Saving and locking
//
// Save is atomic: it writes a temporary file (mode 0600) in the keystore's
// directory, syncs it, renames it over the keystore and syncs the directory,
// so after a crash the file holds either the old or the new contents. Create
// makes a missing directory with mode 0700.
//
// The lock is an exclusive flock(2) on a companion file, the keystore path
// with ".lock" appended (mode 0600), taken by Create and Open and released by
// Close; the companion file is never removed, because removing a lock file
// races with a process about to lock it. flock locks follow the open file, so
// they also exclude a second Open within the same process, and the kernel
// releases them when a process dies. On systems without flock (Windows,
// Plan 9, ...) the lock is not taken and callers must not open one keystore
// twice.
//
// # Limits
//
// The room state encoding must be overwritten when a room advances (spec
// 06-room-keys §5). Save replaces the file by rename, so the old file's
// blocks are freed rather than overwritten, and all versions are encrypted
// under the same key until the passphrase changes: forward secrecy against a
// later theft of the device and passphrase is best effort, as is wiping
// secrets from memory in Go.
package keystore
