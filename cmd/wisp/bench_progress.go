package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// benchProgressInterval is how often the progress bar is redrawn.
	benchProgressInterval = 200 * time.Millisecond
	// benchProgressWidth is the width of the bar itself, in characters.
	benchProgressWidth = 30
)

// isTerminal reports whether w is a terminal: a character device other
// than the null device. It needs no terminal library, and may take another
// character device (a serial line) for one, which does no harm here.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	if null, err := os.Stat(os.DevNull); err == nil && os.SameFile(fi, null) {
		return false
	}
	return true
}

// progressBar redraws one line on a terminal every benchProgressInterval
// from its own goroutine, until stop. A nil *progressBar draws nothing.
type progressBar struct {
	w     io.Writer
	label string
	total int64         // ops to do
	limit time.Duration // the time limit, 0 for none
	done  func() int64  // ops done so far; safe for concurrent use
	start time.Time

	stopc    chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup // the drawing goroutine
}

// startProgress starts a progress bar on w towards total ops (0: none)
// or limit (0: none), or returns nil if w is nil or there is neither.
func startProgress(w io.Writer, label string, total int64, limit time.Duration, done func() int64) *progressBar {
	if w == nil || (total <= 0 && limit <= 0) {
		return nil
	}
	p := &progressBar{w: w, label: label, total: total, limit: limit, done: done, start: time.Now(), stopc: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(benchProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-p.stopc:
				return
			case <-t.C:
				fmt.Fprintf(p.w, "\r%s\x1b[K", renderProgress(p.label, p.done(), p.total, time.Since(p.start), p.limit))
			}
		}
	})
	return p
}

// stop stops the bar, waits for its goroutine and clears its line. It is
// safe to call twice, and on nil.
func (p *progressBar) stop() {
	if p == nil {
		return
	}
	p.stopOnce.Do(func() {
		close(p.stopc)
		p.wg.Wait()
		fmt.Fprint(p.w, "\r\x1b[K")
	})
}

// renderProgress returns the progress line: the bar filled to the larger of
// done/total and elapsed/limit (a zero total or limit counts as none), then
// the ops done (of total), the mean ops/s and the time so far (of limit):
//
//	bench put [#############.................]  45%  9000/20000 ops  4512 ops/s  2.0s
//	bench put [#############.................]  45%  9000 ops  4512 ops/s  2.0s/4.4s
func renderProgress(label string, done, total int64, elapsed, limit time.Duration) string {
	frac := 0.0
	ops := strconv.FormatInt(done, 10)
	if total > 0 {
		frac = float64(done) / float64(total)
		ops += "/" + strconv.FormatInt(total, 10)
	}
	clock := fmt.Sprintf("%.1fs", elapsed.Seconds())
	if limit > 0 {
		frac = max(frac, elapsed.Seconds()/limit.Seconds())
		clock += fmt.Sprintf("/%.1fs", limit.Seconds())
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * benchProgressWidth)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(done) / elapsed.Seconds()
	}
	return fmt.Sprintf("%s [%s%s] %3.0f%%  %s ops  %.0f ops/s  %s",
		label, strings.Repeat("#", filled), strings.Repeat(".", benchProgressWidth-filled),
		100*frac, ops, rate, clock)
}
