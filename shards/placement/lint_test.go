package placement

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// forbiddenImports keeps the planner deterministic and free of I/O: no
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

// allowedImports are exceptions below a forbidden package (none: the planner
// is pure).
var allowedImports = []string{}

// TestImports fails if a non-test file of the package imports a forbidden
// package or one below it (net/http, os/signal, ...), like pebble's
// internal/lint.
func TestImports(t *testing.T) { importtest.Forbid(t, forbiddenImports, allowedImports) }
