package client

import (
	"context"
	"fmt"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Expire sets key's time to live to ttl (rounded up to a millisecond; it
// must be positive) and returns whether the key existed and its new
// version. A missing key is not an error: found is false and nothing
// changes. WithIfVersion makes it conditional. Expire is retried only on a
// server-sent Unavailable.
func (c *Client) Expire(ctx context.Context, key string, ttl time.Duration, opts ...WriteOption) (found bool, version uint64, err error) {
	const op = "expire"
	if key == "" {
		return false, 0, wrapError(op, key, 0, errEmptyKey)
	}
	if ttl <= 0 {
		return false, 0, wrapError(op, key, 0, fmt.Errorf("%w: ttl must be positive, got %v (use Persist to remove an expiry)", ErrInvalidArgument, ttl))
	}
	wc := newWriteConfig(opts)
	if wc.ttlSet || wc.ifAbsent {
		return false, 0, wrapError(op, key, 0, fmt.Errorf("%w: only WithIfVersion applies to expire", ErrInvalidArgument))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.ExpireRequest{Key: []byte(key), TtlMs: ttlMs(ttl), IfVersion: wc.ifVersion}
	res, attempts, err := invoke(ctx, c, writeCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.ExpireResponse, error) {
		r, err := ep.kv.Expire(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return false, 0, wrapError(op, key, attempts, err)
	}
	return res.GetFound(), res.GetVersion(), nil
}

// Persist removes key's expiry and returns whether the key existed and its
// new version. WithIfVersion makes it conditional. Persist is retried only
// on a server-sent Unavailable.
func (c *Client) Persist(ctx context.Context, key string, opts ...WriteOption) (found bool, version uint64, err error) {
	const op = "persist"
	if key == "" {
		return false, 0, wrapError(op, key, 0, errEmptyKey)
	}
	wc := newWriteConfig(opts)
	if wc.ttlSet || wc.ifAbsent {
		return false, 0, wrapError(op, key, 0, fmt.Errorf("%w: only WithIfVersion applies to persist", ErrInvalidArgument))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.PersistRequest{Key: []byte(key), IfVersion: wc.ifVersion}
	res, attempts, err := invoke(ctx, c, writeCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.PersistResponse, error) {
		r, err := ep.kv.Persist(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return false, 0, wrapError(op, key, attempts, err)
	}
	return res.GetFound(), res.GetVersion(), nil
}

// TTL returns the time key has left, measured by the server that answers:
// found is false if the key does not exist; ttl is 0 for a key without an
// expiry. It is retried like Get.
func (c *Client) TTL(ctx context.Context, key string, opts ...ReadOption) (ttl time.Duration, found bool, err error) {
	res, err := c.get(ctx, "ttl", key, opts)
	if err != nil {
		return 0, false, err
	}
	return time.Duration(res.GetTtlMs()) * time.Millisecond, res.GetFound(), nil
}

// Config is the cluster-wide settings. A nil field is unset: on read it was
// never set cluster-wide (nodes use their flags); on write it is left as is.
type Config struct {
	// MaxMemoryBytes is each node's memory budget for data; 0: no limit.
	MaxMemoryBytes *int64
	// EvictionPolicy is one of noeviction, allkeys-lru, allkeys-lfu,
	// volatile-lru, volatile-lfu, volatile-ttl, allkeys-random,
	// volatile-random.
	EvictionPolicy *string
}

func configFrom(c *wispv1.ClusterConfig) Config {
	return Config{MaxMemoryBytes: c.MaxMemoryBytes, EvictionPolicy: c.EvictionPolicy}
}

// GetConfig returns the settings set cluster-wide and those in force on the
// answering node (cluster-wide values, else its flags). Retried like Get.
func (c *Client) GetConfig(ctx context.Context) (set, effective Config, err error) {
	const op = "get config"
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, readCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.GetConfigResponse, error) {
		r, err := ep.cluster.GetConfig(ctx, connect.NewRequest(&wispv1.GetConfigRequest{}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return Config{}, Config{}, wrapError(op, "", attempts, err)
	}
	return configFrom(res.GetConfig()), configFrom(res.GetEffective()), nil
}

// SetConfig changes the non-nil settings of cfg cluster-wide and returns
// the settings afterwards. Retried only on a server-sent Unavailable.
func (c *Client) SetConfig(ctx context.Context, cfg Config) (set, effective Config, err error) {
	const op = "set config"
	if cfg.MaxMemoryBytes == nil && cfg.EvictionPolicy == nil {
		return Config{}, Config{}, wrapError(op, "", 0, fmt.Errorf("%w: nothing to set", ErrInvalidArgument))
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.SetConfigRequest{Config: &wispv1.ClusterConfig{MaxMemoryBytes: cfg.MaxMemoryBytes, EvictionPolicy: cfg.EvictionPolicy}}
	res, attempts, err := invoke(ctx, c, writeCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.SetConfigResponse, error) {
		r, err := ep.cluster.SetConfig(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return Config{}, Config{}, wrapError(op, "", attempts, err)
	}
	return configFrom(res.GetConfig()), configFrom(res.GetEffective()), nil
}
