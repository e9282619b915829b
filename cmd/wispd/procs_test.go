package main

import (
	"runtime"
	"testing"
)

func TestSetProcs(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(orig) })

	if got := setProcs(3); got != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Errorf("setProcs(3) = %d, GOMAXPROCS %d; want 3", got, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(orig)
	t.Setenv("GOMAXPROCS", "")
	if got := setProcs(0); got != 2*orig || runtime.GOMAXPROCS(0) != 2*orig {
		t.Errorf("setProcs(0) = %d, GOMAXPROCS %d; want twice %d", got, runtime.GOMAXPROCS(0), orig)
	}
	runtime.GOMAXPROCS(orig)
	t.Setenv("GOMAXPROCS", "5") // the environment wins; Go read it at start
	if got := setProcs(0); got != orig {
		t.Errorf("setProcs(0) with GOMAXPROCS set = %d; want %d (unchanged)", got, orig)
	}
}
