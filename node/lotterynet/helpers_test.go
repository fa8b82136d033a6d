package lotterynet_test

import (
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/parley-chat/parley/protocol/keys"
)

// libp2pKey is the node key as a libp2p identity: the node's peer ID is
// its NodeID.
func libp2pKey(k keys.NodeKey) (crypto.PrivKey, error) {
	return crypto.UnmarshalEd25519PrivateKey(append(append([]byte{}, k.Seed()...), pub(k)...))
}

func pub(k keys.NodeKey) []byte { id := k.Public(); return id[:] }
