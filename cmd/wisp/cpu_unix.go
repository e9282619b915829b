//go:build unix

package main

import (
	"syscall"
	"time"
)

// processCPU returns this process's user plus system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0 // RUSAGE_SELF cannot fail; report no CPU rather than crash
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
