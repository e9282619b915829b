package budget

import (
	"testing"

	"github.com/wisp-db/wisp/internal/importtest"
)

// TestImports keeps the rule pure: no non-test file may import a package of
// importtest.Pure or one below it.
func TestImports(t *testing.T) { importtest.Forbid(t, importtest.Pure, nil) }
