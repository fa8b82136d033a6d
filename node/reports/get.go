package reports

import (
	"context"
	"errors"

	"github.com/parley-chat/parley/node/store"
)

// ErrNoReport is returned by Get for an unknown report ID.
var ErrNoReport = errors.New("reports: no such report")

// Get returns the stored report id, or ErrNoReport.
func (r *Reports) Get(ctx context.Context, id [32]byte) (Stored, error) {
	s, _, err := r.get(ctx, id)
	return s, err
}

func (r *Reports) get(ctx context.Context, id [32]byte) (Stored, []byte, error) {
	if err := ctx.Err(); err != nil {
		return Stored{}, nil, err
	}
	v, err := r.st.Get(store.Key(store.PrefixReport, id[:]))
	if errors.Is(err, store.ErrNotFound) {
		return Stored{}, nil, ErrNoReport
	}
	if err != nil {
		return Stored{}, nil, err
	}
	return decodeStored(id[:], v)
}
