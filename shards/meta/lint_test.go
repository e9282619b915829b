package meta

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// forbiddenImports keep the map deterministic: no clock, randomness, files,
// goroutines or Raft. net and net/url are allowed for parsing addresses
// only (net.SplitHostPort, url.Parse); no dialing happens here.
var forbiddenImports = []string{"crypto/rand", "math/rand", "os", "sync", "syscall", "time", "unsafe", "github.com/hashicorp"}

// TestImports fails if a non-test file imports a forbidden package.
func TestImports(t *testing.T) { importtest.Forbid(t, forbiddenImports, nil) }
