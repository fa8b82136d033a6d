package blob_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/wire"
)

// body strips a frame's length prefix, checking it.
func body(t testing.TB, frame []byte) []byte {
	t.Helper()
	n, err := blob.FrameLen([blob.FramePrefixLen]byte(frame[:blob.FramePrefixLen]))
	if err != nil || n != len(frame)-blob.FramePrefixLen {
		t.Fatalf("FrameLen = %d, %v; body has %d bytes", n, err, len(frame)-blob.FramePrefixLen)
	}
	return frame[blob.FramePrefixLen:]
}

// TestFetchFrames: each frame of the fetch protocol round-trips, and the
// decoders refuse wrong types, statuses and lengths (spec 08 §12).
func TestFetchFrames(t *testing.T) {
	key := testKey(t, "fetch")
	m, chunks := encrypt(t, key, pattern(2*C+5))
	mb, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	req := blob.FetchRequest{Address: m.Address(), From: 2}
	got, err := blob.DecodeFetchRequest(body(t, req.AppendFrame(nil)))
	if err != nil || got != req {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	ans, err := blob.FetchAnswer{Status: blob.FetchOK, Manifest: mb}.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := blob.DecodeFetchAnswer(body(t, ans))
	if err != nil || a.Status != blob.FetchOK || !bytes.Equal(a.Manifest, mb) {
		t.Fatalf("answer round trip: %v, %v", a.Status, err)
	}
	down, err := blob.FetchAnswer{Status: blob.FetchTakenDown}.AppendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, err := blob.DecodeFetchAnswer(body(t, down)); err != nil || a.Status != blob.FetchTakenDown || len(a.Manifest) != 0 {
		t.Fatalf("taken-down answer: %+v, %v", a, err)
	}
	if _, err := (blob.FetchAnswer{Status: blob.FetchOK}).AppendFrame(nil); err == nil {
		t.Error("an OK answer without a manifest encodes")
	}
	if _, err := (blob.FetchAnswer{Status: 9}).AppendFrame(nil); err == nil {
		t.Error("an unknown status encodes")
	}
	i, c, err := blob.DecodeChunkFrame(body(t, blob.AppendChunkFrame(nil, 1, chunks[1])))
	if err != nil || i != 1 || !bytes.Equal(c, chunks[1]) {
		t.Fatalf("chunk round trip: %d, %v", i, err)
	}

	// Wrong frame types: each decoder takes its own only.
	for name, err := range map[string]error{
		"request as answer": second(blob.DecodeFetchAnswer(body(t, req.AppendFrame(nil)))),
		"answer as request": second(blob.DecodeFetchRequest(body(t, ans))),
		"answer as chunk":   third(blob.DecodeChunkFrame(body(t, ans))),
		"trailing byte":     second(blob.DecodeFetchRequest(append(body(t, req.AppendFrame(nil)), 0))),
		"from too large":    second(blob.DecodeFetchRequest(body(t, blob.FetchRequest{From: wire.MaxBlobChunks}.AppendFrame(nil)))),
		"oversized chunk":   third(blob.DecodeChunkFrame(body(t, blob.AppendChunkFrame(nil, 0, make([]byte, blob.MaxChunkSize+1))))),
	} {
		if !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("%s: error %v, want a parse error", name, err)
		}
	}
	for _, n := range []uint32{0, wire.MaxBlobFetchFrame + 1} {
		var p [blob.FramePrefixLen]byte
		p[0], p[1], p[2], p[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		if _, err := blob.FrameLen(p); !errors.Is(err, wire.ErrMalformed) {
			t.Errorf("FrameLen(%d) = %v, want a parse error", n, err)
		}
	}
}

func second[T any](_ T, err error) error        { return err }
func third[T, U any](_ T, _ U, err error) error { return err }

// FuzzFetchFrames: every decoder of the fetch protocol fails only with a
// *wire.ParseError, and what decodes re-encodes to the same bytes (spec 02
// §1, spec 08 §12).
func FuzzFetchFrames(f *testing.F) {
	m, chunks := encrypt(f, testKey(f, "fuzz-fetch"), pattern(C+1))
	mb, _ := m.MarshalBinary()
	ans, _ := blob.FetchAnswer{Status: blob.FetchOK, Manifest: mb}.AppendFrame(nil)
	nf, _ := blob.FetchAnswer{Status: blob.FetchNotFound}.AppendFrame(nil)
	f.Add(blob.FetchRequest{Address: m.Address(), From: 1}.AppendFrame(nil)[blob.FramePrefixLen:])
	f.Add(ans[blob.FramePrefixLen:])
	f.Add(nf[blob.FramePrefixLen:])
	f.Add(blob.AppendChunkFrame(nil, 1, chunks[1])[blob.FramePrefixLen:])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := blob.DecodeFetchRequest(b); err != nil {
			isParseError(t, "DecodeFetchRequest", err)
		} else if enc := r.AppendFrame(nil)[blob.FramePrefixLen:]; !bytes.Equal(enc, b) {
			t.Fatalf("request re-encodes to %x, not %x", enc, b)
		}
		if a, err := blob.DecodeFetchAnswer(b); err != nil {
			isParseError(t, "DecodeFetchAnswer", err)
		} else if enc, err := a.AppendFrame(nil); err != nil || !bytes.Equal(enc[blob.FramePrefixLen:], b) {
			t.Fatalf("answer re-encodes to %x (%v), not %x", enc, err, b)
		}
		if i, c, err := blob.DecodeChunkFrame(b); err != nil {
			isParseError(t, "DecodeChunkFrame", err)
		} else if enc := blob.AppendChunkFrame(nil, i, c)[blob.FramePrefixLen:]; !bytes.Equal(enc, b) {
			t.Fatalf("chunk frame re-encodes to %x, not %x", enc, b)
		}
	})
}
