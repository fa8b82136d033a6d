package daemon

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/parley-chat/parley/node/admin"
	"github.com/parley-chat/parley/node/blobs"
	"github.com/parley-chat/parley/protocol/blob"
)

// `parleyd admin blobs show ADDR --key KEY`: the node serves the manifest
// and the ciphertext; this command checks them against the address and
// the key's commitment and decrypts them here (spec 08 §7, §8). The key
// is never sent to the node.

// parseBlobKey accepts a link (parley://.../blob/ADDR#KEY), whose address
// must be addr, or the key alone (43 characters of unpadded base64url).
func parseBlobKey(text string, addr blob.Address) (blob.Key, error) {
	var k blob.Key
	if strings.HasPrefix(text, "parley://") {
		l, err := blob.ParseLink(text)
		if err != nil {
			return k, fmt.Errorf("--key: %w", err)
		}
		if l.Address != addr {
			return k, fmt.Errorf("--key: the link is for %s, not %s", l.Address, addr)
		}
		return l.Key, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(text)
	if err != nil || len(b) != len(k) {
		return k, errors.New("--key: not a blob key (43 characters of base64url) or a parley:// link")
	}
	copy(k[:], b)
	return k, nil
}

func (c *adminClient) showBlob(ctx context.Context, w io.Writer, cmd adminCommand) error {
	addr, err := blob.ParseAddress(cmd.words[0])
	if err != nil {
		return fmt.Errorf("parleyd admin blobs show: %w", err)
	}
	var info admin.Blob
	raw, err := c.do(ctx, http.MethodGet, "blobs/"+addr.String(), nil, &info)
	if err != nil {
		return err
	}
	if cmd.key == "" {
		if cmd.json {
			_, err := w.Write(raw)
			return err
		}
		fmt.Fprintf(w, "blob:    %s\nstate:   %s\n", info.Address, info.State)
		if info.State != "taken_down" {
			if info.Origin != "" {
				fmt.Fprintf(w, "origin:  %s\n", info.Origin)
			} else {
				fmt.Fprintf(w, "owner:   %s\n", info.Owner)
			}
			fmt.Fprintf(w, "size:    %d bytes (%d stored)\ncreated: %s\nexpires: %s\n", info.Size, info.Stored, info.Created, info.Expires)
		}
		return nil
	}
	key, err := parseBlobKey(cmd.key, addr)
	if err != nil {
		return err
	}
	mraw, err := c.get(ctx, "blobs/"+addr.String()+"/manifest", blob.MaxManifestSize)
	if err != nil {
		return err
	}
	m, err := blob.VerifyManifest(addr, mraw)
	if err != nil {
		return fmt.Errorf("the node's manifest: %w", err)
	}
	body, err := c.open(ctx, "blobs/"+addr.String()+"/content")
	if err != nil {
		return err
	}
	defer func() { _ = body.Close() }()
	dst, done := w, func(error) error { return nil }
	if cmd.out != "" {
		f, err := os.OpenFile(cmd.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		bw := bufio.NewWriterSize(f, 1<<20)
		dst = bw
		done = func(err error) error {
			if err == nil {
				err = bw.Flush()
			}
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				_ = os.Remove(cmd.out) // never leave an incomplete file
			}
			return err
		}
	}
	r := bufio.NewReaderSize(body, 1<<20)
	chunk := make([]byte, blob.MaxChunkSize)
	stored := blobs.CipherSize(m.Size)
	err = blob.Decrypt(key, m, func(i uint32) ([]byte, error) {
		n := blob.MaxChunkSize
		if i+1 == m.ChunkCount {
			n = int(stored - uint64(m.ChunkCount-1)*blob.MaxChunkSize)
		}
		if _, err := io.ReadFull(r, chunk[:n]); err != nil {
			return nil, fmt.Errorf("reading chunk %d: %w", i, err)
		}
		return chunk[:n], nil
	}, dst)
	if err = done(err); err != nil {
		return fmt.Errorf("parleyd admin blobs show: %w", err)
	}
	if cmd.out != "" {
		if cmd.json {
			return json.NewEncoder(w).Encode(map[string]any{"address": addr.String(), "size": m.Size, "out": cmd.out})
		}
		fmt.Fprintf(w, "decrypted %s: %d bytes, checked against its address and key, written to %s\n", addr, m.Size, cmd.out)
	}
	return nil
}

// get returns the body of a 200 answer of at most limit bytes.
func (c *adminClient) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	body, err := c.open(ctx, path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = body.Close() }()
	b, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err == nil && int64(len(b)) > limit {
		err = fmt.Errorf("admin API: answer over %d bytes", limit)
	}
	return b, err
}

// open GETs path and returns the body of a 200 answer.
func (c *adminClient) open(ctx context.Context, path string) (io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+admin.Prefix+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling the node's admin API at %s (is the node running?): %w", c.base, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer func() { _ = resp.Body.Close() }()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var eb admin.ErrorBody
		if json.Unmarshal(raw, &eb) == nil && eb.Error.Code != "" {
			return nil, fmt.Errorf("admin API: %s: %s (HTTP %d)", eb.Error.Code, eb.Error.Message, resp.StatusCode)
		}
		return nil, fmt.Errorf("admin API: HTTP %d", resp.StatusCode)
	}
	return resp.Body, nil
}
