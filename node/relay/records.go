package relay

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/parley-chat/parley/node/store"
	"github.com/parley-chat/parley/protocol/keys"
	"github.com/parley-chat/parley/protocol/stamp"
	"github.com/parley-chat/parley/protocol/wire"
)

// The encodings of the relay's records; the package doc lists them.

const recordVersion = 1

func txKey(from keys.AccountID, txid string) []byte {
	return store.Key(store.PrefixSendTx, from[:], []byte(txid))
}

func seenKey(recipient keys.AccountID, id [32]byte) []byte {
	return store.Key(store.PrefixEnvelopeSeen, recipient[:], id[:])
}

func encodeResult(t time.Time, res Result) []byte {
	e := wire.NewEncoder(1 + 8 + 32 + 8 + 1 + 32 + 8 + 4 + 4 + 1 + 32*len(res.Stamp.Path) + keys.SignatureSize)
	e.U8(recordVersion)
	e.I64(t.UnixNano())
	e.Fixed(res.ID[:])
	e.U64(res.Pos)
	res.Stamp.Append(e)
	return e.Bytes()
}

func decodeResult(v []byte) (Result, time.Time, error) {
	var res Result
	d := wire.NewDecoder("send record", v)
	d.Version(recordVersion)
	t := d.Field("time").I64()
	d.Field("id").Fixed(res.ID[:])
	res.Pos = d.Field("pos").U64()
	res.Stamp = stamp.Read(d.Field("stamp"))
	if err := d.Finish(); err != nil {
		return Result{}, time.Time{}, fmt.Errorf("relay: corrupt send record: %w", err)
	}
	return res, time.Unix(0, t).UTC(), nil
}

type seenRecord struct {
	time time.Time
	pos  uint64
	txid string
}

func encodeSeen(t time.Time, pos uint64, txid string) []byte {
	e := wire.NewEncoder(1 + 8 + 8 + 1 + len(txid))
	e.U8(recordVersion)
	e.I64(t.UnixNano())
	e.U64(pos)
	e.U8(uint8(len(txid))) // at most MaxTxID
	e.Fixed([]byte(txid))
	return e.Bytes()
}

func decodeSeen(v []byte) (seenRecord, error) {
	d := wire.NewDecoder("seen record", v)
	d.Version(recordVersion)
	var s seenRecord
	s.time = time.Unix(0, d.Field("time").I64()).UTC()
	s.pos = d.Field("pos").U64()
	n := int(d.Field("txid length").U8())
	if d.Err() == nil && n > MaxTxID {
		d.Fail("txid of %d bytes", n)
	}
	txid := make([]byte, n)
	d.Field("txid").Fixed(txid)
	if err := d.Finish(); err != nil {
		return seenRecord{}, fmt.Errorf("relay: corrupt seen record: %w", err)
	}
	s.txid = string(txid)
	return s, nil
}

// recordTime returns the time in a tx/ or seen/ record; ok is false if the
// record is too short to hold one.
func recordTime(v []byte) (int64, bool) {
	if len(v) < 9 || v[0] != recordVersion {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v[1:9])), true
}
