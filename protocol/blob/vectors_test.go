package blob_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/hkdf"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/wire"
	"github.com/parley-chat/parley/spec/vectortest"
)

// vector is one entry of spec/testdata/blob.json (spec 08-blobs §9). Kind
// says which fields are set and what is checked:
//
//   - blob: a whole blob from key and plaintext (hex, or plaintext_pattern
//     "i mod 251" of size bytes), with the derived keys, every chunk (small
//     blobs only), the manifest, its address and a link from origin.
//   - chunk: OpenChunk(key, manifest, index, chunk) fails with error.
//   - manifest: the manifest fails to parse, or (with address_hex) is not
//     that address's manifest.
//   - address, link, locator: the text fails to parse with error.
type vector struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"`
	Key        string   `json:"key,omitempty"`
	EncKey     string   `json:"enc_key,omitempty"`
	Commitment string   `json:"commitment,omitempty"`
	Size       *uint64  `json:"size,omitempty"`
	Plaintext  string   `json:"plaintext,omitempty"`
	Pattern    string   `json:"plaintext_pattern,omitempty"`
	Chunks     []string `json:"chunks,omitempty"`
	Index      *uint32  `json:"index,omitempty"`
	Chunk      string   `json:"chunk,omitempty"`
	Manifest   string   `json:"manifest,omitempty"`
	AddressHex string   `json:"address_hex,omitempty"`
	Address    string   `json:"address,omitempty"`
	Origin     string   `json:"origin,omitempty"`
	Link       string   `json:"link,omitempty"`
	Locator    string   `json:"locator,omitempty"`
	Error      string   `json:"error,omitempty"`
}

const patternName = "i mod 251"

func ptr[T any](v T) *T { return &v }

// keyHex returns the key's bytes in hex (the key's own formatting hides them).
func keyHex(k blob.Key) string { return hex.EncodeToString(k[:]) }

// hkdfRef derives 32 bytes from key with info, independently of the package.
func hkdfRef(t testing.TB, key []byte, info string) []byte {
	out := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, key, nil, []byte(info)), out); err != nil {
		t.Fatal(err)
	}
	return out
}

// errClass names the error class of err as the vectors do.
func errClass(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, blob.ErrNoKey):
		return "no_key"
	case errors.Is(err, wire.ErrMalformed):
		return "malformed"
	case errors.Is(err, blob.ErrWrongKey):
		return "wrong_key"
	case errors.Is(err, blob.ErrBadChunk):
		return "bad_chunk"
	case errors.Is(err, blob.ErrDecrypt):
		return "decrypt"
	case errors.Is(err, blob.ErrWrongAddress):
		return "wrong_address"
	default:
		return "unexpected: " + err.Error()
	}
}

func unhex(t testing.TB, name, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", name, err)
	}
	return b
}

func buildVectors(t *testing.T) []vector {
	rng := vectortest.Rand("blob vectors")
	// One key per blob: a key is never used for two blobs (spec 08-blobs §1).
	keyEmpty, _ := blob.NewKey(rng)
	key, _ := blob.NewKey(rng)
	other, _ := blob.NewKey(rng)
	small := make([]byte, 100)
	if _, err := io.ReadFull(rng, small); err != nil {
		t.Fatal(err)
	}
	nk, err := keys.GenerateNodeKey(vectortest.Rand("blob vectors origin"))
	if err != nil {
		t.Fatal(err)
	}
	origin := nk.Public()

	var vs []vector
	blobVector := func(name string, k blob.Key, pt []byte, pattern string, storeChunks bool) (*blob.Manifest, [][]byte) {
		m, chunks := encrypt(t, k, pt)
		enc, _ := m.MarshalBinary()
		addr := m.Address()
		l := blob.Link{Origin: origin, Address: addr, Key: k}
		v := vector{
			Name: name, Kind: "blob", Key: keyHex(k),
			EncKey:     hex.EncodeToString(hkdfRef(t, k[:], wire.LabelBlobKeys)),
			Commitment: hex.EncodeToString(hkdfRef(t, k[:], wire.LabelBlobCommit)),
			Size:       ptr(uint64(len(pt))), Manifest: hex.EncodeToString(enc),
			AddressHex: hex.EncodeToString(addr[:]), Address: addr.String(),
			Origin: origin.String(), Link: l.String(), Locator: l.Locator().String(),
		}
		if pattern != "" {
			v.Pattern = pattern
		} else {
			v.Plaintext = hex.EncodeToString(pt)
		}
		if storeChunks {
			for _, c := range chunks {
				v.Chunks = append(v.Chunks, hex.EncodeToString(c))
			}
		}
		vs = append(vs, v)
		return m, chunks
	}
	blobVector("empty blob", keyEmpty, nil, "", true)
	m100, c100 := blobVector("100-byte blob", key, small, "", true)
	blobVector("one chunk and 10 bytes", other, pattern(wire.BlobChunkSize+10), patternName, false)

	// Chunks that must be refused, against the 100-byte blob's manifest.
	enc100, _ := m100.MarshalBinary()
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	chunk := c100[0]
	forged := blob.Manifest{Size: m100.Size, ChunkCount: 1, KeyCommitment: m100.KeyCommitment,
		ChunkHashes: [][32]byte{blob.ChunkHash(0, flip(chunk, 5))}}
	forgedEnc, _ := forged.MarshalBinary()
	chunkCases := []struct {
		name     string
		key      blob.Key
		manifest []byte
		index    uint32
		chunk    []byte
		err      string
	}{
		{"flipped ciphertext byte", key, enc100, 0, flip(chunk, 5), "bad_chunk"},
		{"flipped tag byte", key, enc100, 0, flip(chunk, len(chunk)-1), "bad_chunk"},
		{"truncated chunk", key, enc100, 0, chunk[:len(chunk)-1], "bad_chunk"},
		{"index out of range", key, enc100, 1, chunk, "bad_chunk"},
		{"wrong key", other, enc100, 0, chunk, "wrong_key"},
		{"wrong key is checked before the chunk", other, enc100, 0, flip(chunk, 5), "wrong_key"},
		{"manifest lists a chunk the key did not seal", key, forgedEnc, 0, flip(chunk, 5), "decrypt"},
	}
	for _, c := range chunkCases {
		vs = append(vs, vector{Name: c.name, Kind: "chunk", Key: keyHex(c.key), Manifest: hex.EncodeToString(c.manifest),
			Index: ptr(c.index), Chunk: hex.EncodeToString(c.chunk), Error: c.err})
	}

	// Malformed manifests.
	setU32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	setU64 := func(b []byte, off int, v uint64) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint64(b[off:], v)
		return b
	}
	manifestCases := []struct {
		name, enc, addr, err string
	}{
		{"version 2", hex.EncodeToString(append([]byte{2}, enc100[1:]...)), "", "malformed"},
		{"truncated", hex.EncodeToString(enc100[:len(enc100)-1]), "", "malformed"},
		{"trailing byte", hex.EncodeToString(append(bytes.Clone(enc100), 0)), "", "malformed"},
		{"chunk count does not match size", hex.EncodeToString(setU32(enc100, 9, 2)), "", "malformed"},
		{"size does not match chunk count", hex.EncodeToString(setU64(enc100, 1, wire.BlobChunkSize+1)), "", "malformed"},
		{"size above the limit", hex.EncodeToString(setU32(setU64(enc100, 1, blob.MaxSize+1), 9, wire.MaxBlobChunks+1)), "", "malformed"},
		{"empty blob with no chunk", hex.EncodeToString(setU32(setU64(enc100, 1, 0), 9, 0)[:45]), "", "malformed"},
		{"another blob's manifest", hex.EncodeToString(enc100), hex.EncodeToString(func() []byte { a := forged.Address(); return a[:] }()), "wrong_address"},
	}
	for _, c := range manifestCases {
		vs = append(vs, vector{Name: c.name, Kind: "manifest", Manifest: c.enc, AddressHex: c.addr, Error: c.err})
	}

	// Malformed texts.
	addr := m100.Address().String()
	l := blob.Link{Origin: origin, Address: m100.Address(), Key: key}.String()
	loc, frag, _ := strings.Cut(l, "#")
	peer := origin.String()
	for _, c := range []struct{ name, in string }{
		{"upper case", strings.ToUpper(addr)},
		{"no prefix", strings.TrimPrefix(addr, "blob_")},
		{"one character short", addr[:len(addr)-1]},
		{"non-zero trailing bits", blob.Address{}.String()[:56] + "b"},
	} {
		vs = append(vs, vector{Name: "address: " + c.name, Kind: "address", Address: c.in, Error: "malformed"})
	}
	for _, c := range []struct{ name, in, err string }{
		{"no fragment", loc, "no_key"},
		{"empty fragment", loc + "#", "no_key"},
		{"other scheme", "https://" + strings.TrimPrefix(l, "parley://"), "malformed"},
		{"userinfo", "parley://u@" + strings.TrimPrefix(l, "parley://"), "malformed"},
		{"port", "parley://" + peer + ":4001/blob/" + addr + "#" + frag, "malformed"},
		{"query", loc + "?x=1#" + frag, "malformed"},
		{"percent-encoding", "parley://" + peer + "/blob/" + strings.Replace(addr, "_", "%5F", 1) + "#" + frag, "malformed"},
		{"not an Ed25519 peer ID", "parley://QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/blob/" + addr + "#" + frag, "malformed"},
		{"other path", "parley://" + peer + "/file/" + addr + "#" + frag, "malformed"},
		{"trailing slash", loc + "/#" + frag, "malformed"},
		{"key too short", loc + "#" + frag[:42], "malformed"},
		{"padded key", loc + "#" + frag + "=", "malformed"},
		{"oversize", l + strings.Repeat("A", wire.MaxBlobLink-len(l)+1), "malformed"},
	} {
		vs = append(vs, vector{Name: "link: " + c.name, Kind: "link", Link: c.in, Error: c.err})
	}
	vs = append(vs, vector{Name: "locator: a full link (a locator never carries a key)", Kind: "locator", Locator: l, Error: "malformed"})
	return vs
}

// TestVectors writes and consumes spec/testdata/blob.json (spec 08-blobs §9).
func TestVectors(t *testing.T) {
	vectortest.Golden(t, "blob.json", vectortest.File[vector]{
		Description: "Blobs: chunked ChaCha20-Poly1305 with a key commitment, manifests, addresses and links; malformed and tampered inputs with their error class.",
		Spec:        "08-blobs.md",
		Vectors:     buildVectors(t),
	})

	kinds := map[string]int{}
	for _, v := range vectortest.Load[vector](t, "blob.json").Vectors {
		kinds[v.Kind]++
		var got string
		switch v.Kind {
		case "blob":
			checkBlobVector(t, v)
			continue
		case "chunk":
			m, err := blob.ParseManifest(unhex(t, v.Name, v.Manifest))
			if err != nil {
				t.Fatalf("%s: ParseManifest = %v", v.Name, err)
			}
			var k blob.Key
			copy(k[:], unhex(t, v.Name, v.Key))
			_, err = blob.OpenChunk(k, m, *v.Index, unhex(t, v.Name, v.Chunk))
			got = errClass(err)
		case "manifest":
			b := unhex(t, v.Name, v.Manifest)
			var err error
			if v.AddressHex != "" {
				_, err = blob.VerifyManifest(blob.Address(unhex(t, v.Name, v.AddressHex)), b)
			} else {
				_, err = blob.ParseManifest(b)
			}
			got = errClass(err)
		case "address":
			_, err := blob.ParseAddress(v.Address)
			got = errClass(err)
		case "link":
			_, err := blob.ParseLink(v.Link)
			got = errClass(err)
		case "locator":
			_, err := blob.ParseLocator(v.Locator)
			got = errClass(err)
		default:
			t.Fatalf("%s: unknown kind %q", v.Name, v.Kind)
		}
		if got != v.Error {
			t.Errorf("%s: result %q, want %q", v.Name, got, v.Error)
		}
	}
	if kinds["blob"] != 3 || kinds["chunk"] == 0 || kinds["manifest"] == 0 || kinds["link"] == 0 || kinds["address"] == 0 {
		t.Errorf("vector kinds = %v, want every kind", kinds)
	}
}

// checkBlobVector checks a stored blob against the spec: derivations with an
// independent HKDF, each stored chunk with plain ChaCha20-Poly1305 under the
// spec's nonce and associated data, the manifest and address, decryption
// with the package, re-encryption byte for byte, and the link.
func checkBlobVector(t *testing.T, v vector) {
	name := v.Name
	var key blob.Key
	copy(key[:], unhex(t, name, v.Key))
	if got := hex.EncodeToString(hkdfRef(t, key[:], wire.LabelBlobKeys)); got != v.EncKey {
		t.Errorf("%s: encryption key %s, want %s", name, got, v.EncKey)
	}
	commit := key.Commitment()
	if got := hex.EncodeToString(commit[:]); got != v.Commitment || got != hex.EncodeToString(hkdfRef(t, key[:], wire.LabelBlobCommit)) {
		t.Errorf("%s: commitment %s, want %s", name, got, v.Commitment)
	}
	var pt []byte
	switch v.Pattern {
	case "":
		pt = unhex(t, name, v.Plaintext)
	case patternName:
		pt = pattern(int(*v.Size))
	default:
		t.Fatalf("%s: unknown plaintext pattern %q", name, v.Pattern)
	}
	if uint64(len(pt)) != *v.Size {
		t.Fatalf("%s: plaintext is %d bytes, size says %d", name, len(pt), *v.Size)
	}

	mb := unhex(t, name, v.Manifest)
	addr, err := blob.ParseAddress(v.Address)
	if err != nil || hex.EncodeToString(addr[:]) != v.AddressHex {
		t.Fatalf("%s: ParseAddress(%q) = %x, %v, want %s", name, v.Address, addr, err, v.AddressHex)
	}
	m, err := blob.VerifyManifest(addr, mb)
	if err != nil {
		t.Fatalf("%s: VerifyManifest = %v", name, err)
	}
	if m.Size != *v.Size || m.KeyCommitment != commit {
		t.Errorf("%s: manifest size %d / commitment mismatch", name, m.Size)
	}

	// Re-encrypting gives the same bytes.
	m2, chunks := encrypt(t, key, pt)
	if enc, _ := m2.MarshalBinary(); !bytes.Equal(enc, mb) {
		t.Errorf("%s: re-encryption gives another manifest", name)
	}
	if v.Chunks != nil {
		if len(v.Chunks) != len(chunks) {
			t.Fatalf("%s: %d stored chunks, encryption gives %d", name, len(v.Chunks), len(chunks))
		}
		aead, err := chacha20poly1305.New(unhex(t, name, v.EncKey))
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range v.Chunks {
			c := unhex(t, name, s)
			if !bytes.Equal(c, chunks[i]) {
				t.Errorf("%s: re-encrypted chunk %d differs", name, i)
			}
			// Independently of the package: nonce = 7 zero bytes, u32
			// index, final flag; AD = version, u32 index, final flag.
			final := byte(0)
			if i == len(v.Chunks)-1 {
				final = 1
			}
			nonce := append(binary.BigEndian.AppendUint32(make([]byte, 7), uint32(i)), final)
			ad := append(binary.BigEndian.AppendUint32([]byte{blob.Version}, uint32(i)), final)
			p, err := aead.Open(nil, nonce, c, ad)
			if err != nil || !bytes.Equal(p, pt[min(i*C, len(pt)):min((i+1)*C, len(pt))]) {
				t.Errorf("%s: chunk %d does not open with the spec's nonce and AD: %v", name, i, err)
			}
		}
		chunks = nil
		for _, s := range v.Chunks {
			chunks = append(chunks, unhex(t, name, s))
		}
	}
	var out bytes.Buffer
	if err := blob.Decrypt(key, m, serve(chunks), &out); err != nil || !bytes.Equal(out.Bytes(), pt) {
		t.Errorf("%s: Decrypt = %v, or another plaintext", name, err)
	}

	origin, err := keys.ParseNodeID(v.Origin)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	l, err := blob.ParseLink(v.Link)
	if err != nil || l != (blob.Link{Origin: origin, Address: addr, Key: key}) {
		t.Errorf("%s: ParseLink(%q) = %v, want origin, address and key", name, v.Link, err)
	}
	if l.String() != v.Link || l.Locator().String() != v.Locator {
		t.Errorf("%s: link text does not round-trip", name)
	}
	if want := fmt.Sprintf("parley://%s/blob/%s#", v.Origin, v.Address); !strings.HasPrefix(v.Link, want) {
		t.Errorf("%s: link %q does not start with %q", name, v.Link, want)
	}
}
