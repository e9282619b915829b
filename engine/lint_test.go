package engine

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// forbiddenImports keeps the engine deterministic and free of I/O: no
// network, files, clock, randomness, goroutine machinery or unsafe memory.
var forbiddenImports = []string{
	"crypto/rand",
	"math/rand",
	"math/rand/v2",
	"net",
	"os",
	"os/exec",
	"sync",
	"sync/atomic",
	"syscall",
	"testing",
	"time",
	"unsafe",
}

// allowedImports are exceptions below a forbidden package. sync/atomic: the
// access metadata (LRU stamp, LFU counter, access clock) changes on reads,
// which run concurrently with each other and share entries with snapshots,
// so it is atomic. It is not replicated state and decides no output of
// Apply, so the engine stays deterministic; locks stay out.
var allowedImports = []string{
	"sync/atomic",
}

// TestImports fails if a non-test file of the package imports a forbidden
// package or one below it (net/http, os/signal, ...), like pebble's
// internal/lint.
func TestImports(t *testing.T) { importtest.Forbid(t, forbiddenImports, allowedImports) }
