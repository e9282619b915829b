package client

import (
	"testing"
	"time"
)

func TestBackoffBounds(t *testing.T) {
	c, err := New("http://127.0.0.1:1", WithBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ceilings := []time.Duration{10, 20, 40, 80, 100, 100, 100}
	for i, ceiling := range ceilings {
		retry := i + 1
		ceiling *= time.Millisecond
		var top time.Duration
		for range 200 {
			d := c.backoff(retry)
			if d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v; want in [0, %v]", retry, d, ceiling)
			}
			top = max(top, d)
		}
		// Full jitter spreads over the whole range; 200 draws all below
		// half the ceiling would mean the range is wrong.
		if top < ceiling/2 {
			t.Errorf("backoff(%d): largest of 200 draws %v; want some above %v", retry, top, ceiling/2)
		}
	}
	// A huge retry number must not overflow.
	if d := c.backoff(1000); d < 0 || d > 100*time.Millisecond {
		t.Errorf("backoff(1000) = %v; want in [0, 100ms]", d)
	}
}

func TestOptionDefaultsAndBounds(t *testing.T) {
	tests := []struct {
		name                string
		opts                []Option
		attempts            int
		initial, backoffMax time.Duration
		timeout             time.Duration
	}{
		{"defaults", nil, defaultMaxAttempts, defaultBackoffInitial, defaultBackoffMax, 0},
		{"zero values", []Option{WithMaxAttempts(0), WithBackoff(0, 0), WithTimeout(0)},
			defaultMaxAttempts, defaultBackoffInitial, defaultBackoffMax, 0},
		{"negative", []Option{WithMaxAttempts(-1), WithBackoff(-1, -1), WithTimeout(-1)},
			defaultMaxAttempts, defaultBackoffInitial, defaultBackoffMax, 0},
		{"no retries", []Option{WithMaxAttempts(1)}, 1, defaultBackoffInitial, defaultBackoffMax, 0},
		{"capped", []Option{WithMaxAttempts(1000), WithBackoff(time.Hour, time.Hour)},
			maxAttemptsLimit, backoffMaxLimit, backoffMaxLimit, 0},
		{"max below initial", []Option{WithBackoff(2*time.Second, time.Second)}, defaultMaxAttempts, 2 * time.Second, 2 * time.Second, 0},
		{"timeout", []Option{WithTimeout(time.Second)}, defaultMaxAttempts, defaultBackoffInitial, defaultBackoffMax, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New("http://127.0.0.1:1/", tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			if c.maxAttempts != tc.attempts || c.backoffInitial != tc.initial || c.backoffMax != tc.backoffMax || c.timeout != tc.timeout {
				t.Errorf("New = attempts %d, backoff %v..%v, timeout %v; want %d, %v..%v, %v",
					c.maxAttempts, c.backoffInitial, c.backoffMax, c.timeout,
					tc.attempts, tc.initial, tc.backoffMax, tc.timeout)
			}
			if c.baseURL != "http://127.0.0.1:1" {
				t.Errorf("baseURL = %q; want no trailing slash", c.baseURL)
			}
		})
	}
}

func TestTTLRoundsUp(t *testing.T) {
	tests := []struct {
		ttl  time.Duration
		want int64
	}{
		{0, 0},
		{time.Nanosecond, 1},
		{time.Millisecond, 1},
		{1500 * time.Microsecond, 2},
		{30 * time.Second, 30000},
	}
	for _, tc := range tests {
		if got := ttlMs(tc.ttl); got != tc.want {
			t.Errorf("ttlMs(%v) = %d; want %d", tc.ttl, got, tc.want)
		}
	}
}

func TestEndpointCacheBounded(t *testing.T) {
	c, err := New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 * maxEndpoints {
		u := "http://127.0.0.1:" + string(rune('0'+i%10)) + string(rune('0'+i/10%10)) + string(rune('0'+i/100))
		if ep := c.follow(u); ep == nil || ep.url != u {
			t.Fatalf("follow(%q) = %v", u, ep)
		}
		if n := len(c.endpoints); n > maxEndpoints {
			t.Fatalf("after %d hints the cache holds %d endpoints; want at most %d", i+1, n, maxEndpoints)
		}
		if c.endpoints[c.baseURL] == nil {
			t.Fatalf("the base URL left the cache")
		}
	}
	if ep := c.follow("file:///etc/passwd"); ep != nil {
		t.Errorf("follow(file URL) = %v; want nil", ep.url)
	}
	c.forget(c.current())
	if got := c.current().url; got != c.baseURL {
		t.Errorf("after forget, current = %q; want the base URL", got)
	}
}
