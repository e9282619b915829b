//go:build !wasip1

package plugin

import "github.com/wisp-db/wisp/plugins/abi"

// decodeEvictionInput decodes b into in, copying the candidates: outside a
// guest (native tests) the records may not be aligned, nor the machine
// little-endian.
func decodeEvictionInput(b []byte, in *EvictionInput) error {
	return abi.DecodeEvictionInput(b, in)
}
