/*
Package wasi offers a plugin guest the few WASI preview1 functions that the Go
runtime imports, and no capability through them.

A Go module built with GOOS=wasip1 -buildmode=c-shared imports ten
wasi_snapshot_preview1 functions from its runtime (args, environment, clock,
random, fd_write, poll_oneoff, proc_exit, sched_yield) and five more from
package os (fd_close, fd_fdstat_get, fd_fdstat_set_flags, fd_prestat_get,
fd_prestat_dir_name), which the guest SDK pulls in through fmt. This package
implements exactly those fifteen (Functions), each deterministically:

  - no arguments, no environment;
  - the realtime clock reads the current call's time (State.NowUnixMs, the
    leader's stamped time); the monotonic clock is a per-instance counter
    that advances 1 µs per read and jumps when the guest sleeps;
  - random_get returns a fixed pseudo-random sequence, the same for every
    instance;
  - fd_write to stdout or stderr keeps the first bytes of each call (State.Output)
    for error messages; every other file descriptor is EBADF, so there are
    no files and no preopened directories;
  - poll_oneoff completes clock subscriptions at once by moving the
    monotonic clock forward (a guest's sleep takes no time) and fails the
    others with EBADF;
  - proc_exit closes the module with the exit code.

There is no network, filesystem, real clock or entropy to reach. A module
importing anything else is refused before it runs (Offers).
*/
package wasi
