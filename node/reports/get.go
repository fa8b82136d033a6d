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
	if err := ctx.Err(); err != nil {
		return Stored{}, err
	}
	v, err := r.st.Get(store.Key(store.PrefixReport, id[:]))
	if errors.Is(err, store.ErrNotFound) {
		return Stored{}, ErrNoReport
	}
	if err != nil {
		return Stored{}, err
	}
	return decodeStored(id[:], v)
}
