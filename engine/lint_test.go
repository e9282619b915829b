package engine

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// allowedImports are exceptions below a forbidden package. sync/atomic: the
// access metadata (LRU stamp, LFU counter, access clock) changes on reads,
// which run concurrently with each other and share entries with snapshots,
// so it is atomic. It is not replicated state and decides no output of
// Apply, so the engine stays deterministic; locks stay out.
var allowedImports = []string{
	"sync/atomic",
}

// TestImports keeps the engine deterministic and free of I/O: no non-test
// file may import a package of importtest.Pure or one below it, but for
// allowedImports.
func TestImports(t *testing.T) { importtest.Forbid(t, importtest.Pure, allowedImports) }
