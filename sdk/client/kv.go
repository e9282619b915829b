package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"connectrpc.com/connect"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// maxScanLimit is the most items the server returns in one Scan page;
// ScanOptions.Limit is capped at it.
const maxScanLimit = 1000

// Item is a key with its value and metadata.
type Item struct {
	// Key is the key. A Go string holds any bytes, so keys are binary safe.
	Key string
	// Value is the value; nil for a scan with KeysOnly.
	Value []byte
	// Version is the Raft index of the write that produced the value. It
	// only grows, and WithIfVersion compares against it.
	Version uint64
	// ExpiresAt is when the key expires, or the zero time if it has no TTL.
	ExpiresAt time.Time
}

func itemFrom(kv *wispv1.KeyValue) Item {
	return Item{
		Key:       string(kv.GetKey()),
		Value:     kv.GetValue(),
		Version:   kv.GetVersion(),
		ExpiresAt: expiresAt(kv.GetExpiresAtUnixMs()),
	}
}

func expiresAt(unixMs int64) time.Time {
	if unixMs == 0 {
		return time.Time{}
	}
	return time.UnixMilli(unixMs)
}

// Get reads key. It reports found == false, with a nil error, if the key
// does not exist or has expired. Get is retried on Unavailable and on
// transport errors.
func (c *Client) Get(ctx context.Context, key string, opts ...ReadOption) (item Item, found bool, err error) {
	res, err := c.get(ctx, "get", key, opts)
	if err != nil || !res.GetFound() {
		return Item{}, false, err
	}
	return Item{
		Key:       key,
		Value:     res.GetValue(),
		Version:   res.GetVersion(),
		ExpiresAt: expiresAt(res.GetExpiresAtUnixMs()),
	}, true, nil
}

// get sends a GetRequest for op (get, ttl), with the read options applied.
func (c *Client) get(ctx context.Context, op, key string, opts []ReadOption) (*wispv1.GetResponse, error) {
	if key == "" {
		return nil, wrapError(op, key, 0, errEmptyKey)
	}
	consistency, err := readConsistency(opts)
	if err != nil {
		return nil, wrapError(op, key, 0, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.GetRequest{Key: []byte(key), Consistency: consistency}
	res, attempts, err := invoke(ctx, c, readCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.GetResponse, error) {
		return ep.get(ctx, req)
	})
	if err != nil {
		return nil, wrapError(op, key, attempts, err)
	}
	return res, nil
}

// readConsistency applies a read's options and returns its consistency.
func readConsistency(opts []ReadOption) (wispv1.Consistency, error) {
	var rc readConfig
	for _, o := range opts {
		if o != nil {
			o.applyToRead(&rc)
		}
	}
	return rc.consistency.proto()
}

// Put writes value to key and returns the key's new version. With
// WithIfVersion or WithIfAbsent it fails with a *PreconditionError if the
// condition does not hold. Put is retried only on a server-sent Unavailable,
// which means it was not applied.
func (c *Client) Put(ctx context.Context, key string, value []byte, opts ...WriteOption) (version uint64, err error) {
	const op = "put"
	req, err := putRequest(key, value, opts)
	if err != nil {
		return 0, wrapError(op, key, 0, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, writeCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.PutResponse, error) {
		return ep.put(ctx, req)
	})
	if err != nil {
		return 0, wrapError(op, key, attempts, err)
	}
	return res.GetVersion(), nil
}

// Delete removes key. It reports whether the key existed, and the version
// of the delete. With WithIfVersion it fails with a *PreconditionError if
// the key is not at that version. Delete is retried only on a server-sent
// Unavailable.
func (c *Client) Delete(ctx context.Context, key string, opts ...WriteOption) (deleted bool, version uint64, err error) {
	const op = "delete"
	req, err := deleteRequest(key, opts)
	if err != nil {
		return false, 0, wrapError(op, key, 0, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, writeCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.DeleteResponse, error) {
		return ep.delete(ctx, req)
	})
	if err != nil {
		return false, 0, wrapError(op, key, attempts, err)
	}
	return res.GetDeleted(), res.GetVersion(), nil
}

// Increment adds delta (which may be negative) to the decimal int64 held at
// key, an absent key counting as 0, and returns the new value and version.
// The server rejects a key that does not hold a decimal int64. Increment is
// retried only on a server-sent Unavailable.
func (c *Client) Increment(ctx context.Context, key string, delta int64) (value int64, version uint64, err error) {
	const op = "increment"
	if key == "" {
		return 0, 0, wrapError(op, key, 0, errEmptyKey)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.IncrementRequest{Key: []byte(key), Delta: delta}
	res, attempts, err := invoke(ctx, c, writeCall, req.Key, func(ctx context.Context, ep *endpoint) (*wispv1.IncrementResponse, error) {
		return ep.increment(ctx, req)
	})
	if err != nil {
		return 0, 0, wrapError(op, key, attempts, err)
	}
	return res.GetValue(), res.GetVersion(), nil
}

// ScanOptions selects the keys of a Scan. The zero value scans all keys,
// 100 per page, linearizably.
type ScanOptions struct {
	// Prefix restricts the scan to keys that start with it; empty: all keys.
	Prefix string
	// Start is the first key to consider (inclusive); empty: Prefix.
	Start string
	// Limit is the most items per page: 0 means the server's default
	// (100), and values over 1000 are treated as 1000. Negative is an error.
	Limit int
	// PageToken continues a scan from a previous page's NextPageToken;
	// empty starts a new scan.
	PageToken []byte
	// KeysOnly leaves values out (Item.Value is nil), which makes the
	// pages smaller.
	KeysOnly bool
	// Consistency is the read guarantee; the zero value is Linearizable.
	Consistency Consistency
}

// ScanPage is one page of a Scan.
type ScanPage struct {
	// Items are in key order.
	Items []Item
	// NextPageToken continues the scan (as ScanOptions.PageToken); empty
	// when the scan is complete.
	NextPageToken []byte
}

// Scan returns one page of the keys selected by opts, in key order. To read
// every page, use ScanAll. Scan is retried on Unavailable and on transport
// errors.
func (c *Client) Scan(ctx context.Context, opts ScanOptions) (ScanPage, error) {
	const op = "scan"
	if opts.Limit < 0 {
		return ScanPage{}, wrapError(op, "", 0, fmt.Errorf("%w: negative limit %d", ErrInvalidArgument, opts.Limit))
	}
	consistency, err := opts.Consistency.proto()
	if err != nil {
		return ScanPage{}, wrapError(op, "", 0, err)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	req := &wispv1.ScanRequest{
		Prefix:      []byte(opts.Prefix),
		StartKey:    []byte(opts.Start),
		Limit:       uint32(min(opts.Limit, maxScanLimit)),
		PageToken:   opts.PageToken,
		Consistency: consistency,
		KeysOnly:    opts.KeysOnly,
	}
	res, attempts, err := invoke(ctx, c, readCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.ScanResponse, error) {
		r, err := ep.kv.Scan(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return ScanPage{}, wrapError(op, "", attempts, err)
	}
	page := ScanPage{
		Items:         make([]Item, 0, len(res.GetItems())),
		NextPageToken: res.GetNextPageToken(),
	}
	for _, kv := range res.GetItems() {
		page.Items = append(page.Items, itemFrom(kv))
	}
	return page, nil
}

// ScanAll returns an iterator over every key selected by opts, in key
// order, fetching pages of opts.Limit items as it goes and starting at
// opts.PageToken. On an error it yields the error once and stops. Each page
// is a call of its own for WithTimeout and retries; pages are not one
// snapshot, so writes made during the iteration may or may not be seen.
func (c *Client) ScanAll(ctx context.Context, opts ScanOptions) iter.Seq2[Item, error] {
	return func(yield func(Item, error) bool) {
		for {
			page, err := c.Scan(ctx, opts)
			if err != nil {
				yield(Item{}, err)
				return
			}
			for _, it := range page.Items {
				if !yield(it, nil) {
					return
				}
			}
			if len(page.NextPageToken) == 0 {
				return
			}
			if bytes.Equal(page.NextPageToken, opts.PageToken) {
				// A server bug would otherwise loop here forever.
				yield(Item{}, wrapError("scan", "", 1, connect.NewError(connect.CodeInternal, errors.New("server repeated a page token"))))
				return
			}
			opts.PageToken = page.NextPageToken
		}
	}
}

// Op is one write of a Batch, made by PutOp, DeleteOp or IncrementOp. The
// zero Op is invalid.
type Op struct {
	op  *wispv1.BatchOp
	key string
	err error // an invalid argument, reported by Batch
}

// PutOp is a Put within a Batch. WithTTL, WithIfVersion and WithIfAbsent
// apply as for Put.
func PutOp(key string, value []byte, opts ...WriteOption) Op {
	req, err := putRequest(key, value, opts)
	return Op{
		op:  &wispv1.BatchOp{Op: &wispv1.BatchOp_Put{Put: req}},
		key: key,
		err: err,
	}
}

// DeleteOp is a Delete within a Batch. WithIfVersion applies as for Delete.
func DeleteOp(key string, opts ...WriteOption) Op {
	req, err := deleteRequest(key, opts)
	return Op{
		op:  &wispv1.BatchOp{Op: &wispv1.BatchOp_Delete{Delete: req}},
		key: key,
		err: err,
	}
}

// IncrementOp is an Increment within a Batch.
func IncrementOp(key string, delta int64) Op {
	var err error
	if key == "" {
		err = errEmptyKey
	}
	return Op{
		op:  &wispv1.BatchOp{Op: &wispv1.BatchOp_Increment{Increment: &wispv1.IncrementRequest{Key: []byte(key), Delta: delta}}},
		key: key,
		err: err,
	}
}

// BatchResult is the outcome of one Op of a Batch.
type BatchResult struct {
	// Version is the version the batch applied at; it is the same for
	// every op of a batch.
	Version uint64
	// Deleted reports, for a DeleteOp, whether the key existed.
	Deleted bool
	// Value is, for an IncrementOp, the counter's value after the op.
	Value int64
}

// Batch applies ops atomically: every condition is checked first, then all
// writes apply at one version, or none do (a failed condition returns a
// *PreconditionError whose OpIndex names the op). Atomicity holds within one
// shard. The results are in the order of ops. Batch is retried only on a
// server-sent Unavailable.
func (c *Client) Batch(ctx context.Context, ops ...Op) ([]BatchResult, error) {
	const op = "batch"
	if len(ops) == 0 {
		return nil, wrapError(op, "", 0, fmt.Errorf("%w: no ops", ErrInvalidArgument))
	}
	req := &wispv1.BatchRequest{Ops: make([]*wispv1.BatchOp, 0, len(ops))}
	for i, o := range ops {
		if o.op == nil {
			return nil, wrapError(op, "", 0, fmt.Errorf("%w: op %d is the zero Op", ErrInvalidArgument, i))
		}
		if o.err != nil {
			return nil, wrapError(op, "", 0, fmt.Errorf("op %d (%s): %w", i, quoteKey(o.key), o.err))
		}
		req.Ops = append(req.Ops, o.op)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, writeCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.BatchResponse, error) {
		r, err := ep.kv.Batch(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return nil, wrapError(op, "", attempts, err)
	}
	if len(res.GetResults()) != len(ops) {
		return nil, wrapError(op, "", attempts, connect.NewError(connect.CodeInternal,
			fmt.Errorf("server returned %d results for %d ops", len(res.GetResults()), len(ops))))
	}
	results := make([]BatchResult, len(ops))
	for i, r := range res.GetResults() {
		switch r := r.GetResult().(type) {
		case *wispv1.BatchResult_Put:
			results[i] = BatchResult{Version: r.Put.GetVersion()}
		case *wispv1.BatchResult_Delete:
			results[i] = BatchResult{Version: r.Delete.GetVersion(), Deleted: r.Delete.GetDeleted()}
		case *wispv1.BatchResult_Increment:
			results[i] = BatchResult{Version: r.Increment.GetVersion(), Value: r.Increment.GetValue()}
		}
	}
	return results, nil
}

// Status reports the cluster's nodes, shards, replicas and leaders, as seen
// by the node that answers. It is retried on Unavailable and on transport
// errors.
func (c *Client) Status(ctx context.Context) (*wispv1.StatusResponse, error) {
	const op = "status"
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, readCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.StatusResponse, error) {
		r, err := ep.cluster.Status(ctx, connect.NewRequest(&wispv1.StatusRequest{}))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return nil, wrapError(op, "", attempts, err)
	}
	return res, nil
}

// MaxGetManyKeys is the most keys one GetMany reads (the server's limit).
const MaxGetManyKeys = 1000

// GetMany reads keys in one call: the node it goes to reads each shard's
// keys together (one read index per shard for a linearizable read, the
// shards at once) and forwards what it does not lead. It returns the keys
// found; a missing or expired key is absent from the map. Keys may repeat.
// GetMany is retried like Get.
func (c *Client) GetMany(ctx context.Context, keys []string, opts ...ReadOption) (map[string]Item, error) {
	const op = "getmany"
	switch {
	case len(keys) == 0:
		return map[string]Item{}, nil
	case len(keys) > MaxGetManyKeys:
		return nil, wrapError(op, "", 0, fmt.Errorf("%w: %d keys; the limit is %d", ErrInvalidArgument, len(keys), MaxGetManyKeys))
	}
	consistency, err := readConsistency(opts)
	if err != nil {
		return nil, wrapError(op, "", 0, err)
	}
	req := &wispv1.GetManyRequest{Keys: make([][]byte, len(keys)), Consistency: consistency}
	for i, k := range keys {
		if k == "" {
			return nil, wrapError(op, "", 0, errEmptyKey)
		}
		req.Keys[i] = []byte(k)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	res, attempts, err := invoke(ctx, c, readCall, nil, func(ctx context.Context, ep *endpoint) (*wispv1.GetManyResponse, error) {
		r, err := ep.kv.GetMany(ctx, connect.NewRequest(req))
		if err != nil {
			return nil, err
		}
		return r.Msg, nil
	})
	if err != nil {
		return nil, wrapError(op, "", attempts, err)
	}
	if len(res.GetItems()) != len(keys) {
		return nil, wrapError(op, "", attempts, connect.NewError(connect.CodeInternal, fmt.Errorf("the server answered %d items for %d keys", len(res.GetItems()), len(keys))))
	}
	out := make(map[string]Item, len(keys))
	for i, it := range res.GetItems() {
		if it.GetFound() {
			out[keys[i]] = Item{Key: keys[i], Value: it.GetValue(), Version: it.GetVersion(), ExpiresAt: expiresAt(it.GetExpiresAtUnixMs())}
		}
	}
	return out, nil
}
