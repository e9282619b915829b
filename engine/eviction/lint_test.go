package eviction

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// forbiddenImports keeps the policies and the Evictor free of I/O and of a
// clock: time arrives as nowUnixMs, randomness as rnd or a seeded generator.
var forbiddenImports = []string{"net", "os", "os/exec", "syscall", "time", "unsafe", "testing"}

// TestImports fails if a non-test file imports a forbidden package or one
// below it, like the engine's TestImports.
func TestImports(t *testing.T) { importtest.Forbid(t, forbiddenImports, nil) }
