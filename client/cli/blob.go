package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/term"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/protocol/blob"
	"github.com/parley-chat/parley/protocol/keys"
)

// maxChatFile bounds what /send uploads from a chat; larger files go
// through `parley blob put`.
const maxChatFile = 64 << 20

// cmdBlob runs `parley blob put FILE` and `parley blob get LINK [-o FILE]`.
func (r *runner) cmdBlob(args []string) error {
	const use = "usage: parley blob put FILE | parley blob get LINK [-o FILE]\n"
	if len(args) == 0 {
		fmt.Fprint(r.env.Stderr, use)
		return ErrUsage
	}
	fl := r.flags("blob " + args[0])
	outPath := ""
	if args[0] == "get" {
		fl.StringVar(&outPath, "o", "", "write the file here (default: standard output)")
	}
	if err := r.parse(fl, args[1:]); err != nil {
		return err
	}
	// Flags may follow the argument: `blob get LINK -o FILE`.
	var pos []string
	for fl.NArg() > 0 {
		pos = append(pos, fl.Arg(0))
		if err := r.parse(fl, fl.Args()[1:]); err != nil {
			return err
		}
	}
	if len(pos) != 1 || (args[0] != "put" && args[0] != "get") {
		fmt.Fprint(r.env.Stderr, use)
		return ErrUsage
	}
	arg := pos[0]
	return r.withSession(func(s *client.Session) error {
		if args[0] == "put" {
			link, size, err := r.putFile(r.ctx, s, arg)
			if err != nil {
				return err
			}
			if r.out.json {
				return r.out.jsonLine(map[string]any{"link": link.String(), "address": link.Address.String(), "size": size})
			}
			r.out.println("%s", link.String())
			return nil
		}
		link, err := blob.ParseLink(strings.TrimSpace(arg))
		if err != nil {
			return fmt.Errorf("not a blob link: %w", err)
		}
		return r.getFile(s, link, outPath)
	})
}

// progress returns a progress callback that draws on standard error if it
// is a terminal, or nil.
func (r *runner) progress(verb string) func(done, total uint64) {
	f, ok := r.env.Stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || r.out.json {
		return nil
	}
	return func(done, total uint64) {
		pct := 100
		if total > 0 {
			pct = int(done * 100 / total)
		}
		fmt.Fprintf(f, "\r%s %d%% (%d of %d bytes)", verb, pct, done, total)
		if done >= total {
			fmt.Fprintln(f)
		}
	}
}

// putFile uploads the file at path and returns its link.
func (r *runner) putFile(ctx context.Context, s *client.Session, path string) (blob.Link, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return blob.Link{}, 0, err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return blob.Link{}, 0, err
	}
	if !st.Mode().IsRegular() {
		return blob.Link{}, 0, fmt.Errorf("%s is not a regular file", path)
	}
	link, err := s.PutBlob(ctx, f, uint64(st.Size()), client.PutBlobOptions{Progress: r.progress("uploading")})
	if errors.Is(err, client.ErrTooLarge) || errors.Is(err, client.ErrQuotaExceeded) || errors.Is(err, client.ErrNodeFull) {
		return blob.Link{}, 0, fmt.Errorf("the node refused %s (%d bytes): %w", path, st.Size(), err)
	}
	return link, st.Size(), err
}

// getFile downloads link to outPath (a temporary file renamed when the
// whole blob has verified) or to standard output.
func (r *runner) getFile(s *client.Session, link blob.Link, outPath string) error {
	opts := client.GetBlobOptions{Progress: r.progress("downloading")}
	if outPath == "" || outPath == "-" {
		return s.GetBlob(r.ctx, link, r.env.Stdout, opts)
	}
	tmp, err := os.CreateTemp(filepath.Dir(outPath), "."+filepath.Base(outPath)+".part-*")
	if err != nil {
		return err
	}
	err = s.GetBlob(r.ctx, link, tmp, opts)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), outPath)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	if r.out.json {
		return r.out.jsonLine(map[string]any{"file": outPath, "address": link.Address.String()})
	}
	r.out.notice("wrote %s", outPath)
	return nil
}

// chatSendFile handles /send FILE: upload, then send the link in a message.
func (r *runner) chatSendFile(ctx context.Context, s *client.Session, st *chatState, path string) {
	if path == "" {
		r.out.notice("usage: /send FILE")
		return
	}
	if st.room == (keys.RoomID{}) {
		r.out.notice("not in a room yet; waiting for a partner")
		return
	}
	if fi, err := os.Stat(path); err == nil && fi.Size() > maxChatFile {
		r.out.warn("%s is over %d MiB; upload it with `parley blob put` and send the link", path, maxChatFile>>20)
		return
	}
	link, size, err := r.putFile(ctx, s, path)
	if err != nil {
		r.out.warn("not sent: %v", err)
		return
	}
	text := fmt.Sprintf("[file %s, %d bytes] %s", filepath.Base(path), size, link)
	if _, err := s.Send(ctx, st.room, text); err != nil {
		r.out.warn("uploaded, but the message with the link was not sent: %v", err)
		return
	}
	r.out.notice("sent %s", filepath.Base(path))
}

// blobLinks returns the blob links in a received text.
func blobLinks(text string) []string {
	var out []string
	for _, w := range strings.Fields(text) {
		if _, err := blob.ParseLink(w); err == nil {
			out = append(out, w)
		}
	}
	return out
}
