package api

import (
	"bytes"
	"context"
	"slices"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/engine"
	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
)

// Scan lists keys in order across all shards: every shard returns a page
// from the same start (concurrently, each through serve), and the node
// merges them. See mergePages for why the merged page is exact.
func (s *kvService) Scan(ctx context.Context, req *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
	a, m := s.a, req.Msg
	level, err := consistency(m.Consistency)
	if err != nil {
		return nil, err
	}
	if len(m.Prefix) > a.limits.MaxKeyBytes || len(m.StartKey) > a.limits.MaxKeyBytes || len(m.PageToken) > a.limits.MaxKeyBytes+1 {
		return nil, invalidArgument("prefix, start_key and page_token must each be at most %d bytes", a.limits.MaxKeyBytes)
	}
	limit := int(m.Limit)
	switch {
	case limit == 0:
		limit = defaultScanLimit
	case limit > maxScanLimit:
		limit = maxScanLimit
	}
	start := m.StartKey
	if len(m.PageToken) > 0 {
		start = m.PageToken
	}
	one := func(ctx context.Context, id int) (*connect.Response[wispv1.ScanResponse], error) {
		return serve(ctx, a, id, req, true, func(r Replica) (*wispv1.ScanResponse, error) {
			resp := &wispv1.ScanResponse{}
			now := r.NowUnixMs()
			err := r.Read(ctx, level, func(e *engine.Engine) {
				scanPage(e, m, start, limit, a.shardScanBytes(), now, resp)
			})
			return resp, err
		}, func(ctx context.Context, url string, fr *connect.Request[wispv1.ScanRequest]) (*connect.Response[wispv1.ScanResponse], error) {
			return a.peers.kv(url).Scan(ctx, fr)
		})
	}
	if id, ok := targetShard(req.Header(), a.node.Shards()); ok {
		return one(ctx, id) // one shard's page of another node's scan
	}
	pages, errs := fanOut(ctx, a.node.Shards(), one)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	resp := connect.NewResponse(a.mergePages(pages, limit, m.KeysOnly))
	resp.Header().Set(epochHeader, a.node.Route().EpochText)
	return resp, nil
}

// shardScanBytes bounds the keys and values of one shard's page in a
// merged scan, so that a page costs at most MaxScanBytes in all however
// many shards there are. A shard's page always holds at least one item.
func (a *API) shardScanBytes() int { return max(1, a.limits.MaxScanBytes/a.node.Shards()) }

// scanPage fills resp with one shard's page from start, bounded by limit
// items and maxBytes of keys and values.
func scanPage(e *engine.Engine, m *wispv1.ScanRequest, start []byte, limit, maxBytes int, now int64, resp *wispv1.ScanResponse) {
	items, next := e.Scan(start, m.Prefix, limit, now)
	size := 0
	for i, it := range items {
		size += len(it.Key)
		if !m.KeysOnly {
			size += len(it.Value)
		}
		if size > maxBytes && i > 0 {
			next = it.Key // the page is full by bytes: resume at this key
			break
		}
		kv := &wispv1.KeyValue{Key: it.Key, Version: it.Version, ExpiresAtUnixMs: it.ExpiresAtUnixMs}
		if !m.KeysOnly {
			kv.Value = it.Value
		}
		resp.Items = append(resp.Items, kv)
	}
	resp.NextPageToken = next
}

// mergePages merges the shards' pages, all from the same start, into one
// page of at most limit items and MaxScanBytes.
//
// A shard whose page has a next token may hold more keys, but none below
// that token that its page lacks. So below the smallest next token of all
// pages (the bound) the union of the pages is exactly the keyspace's keys
// from start; the merged page takes keys only from there, in order, and
// resumes at the first key it did not take (or at the bound).
func (a *API) mergePages(pages []*connect.Response[wispv1.ScanResponse], limit int, keysOnly bool) *wispv1.ScanResponse {
	var bound []byte // nil: every shard is complete
	total := 0
	for _, p := range pages {
		total += len(p.Msg.Items)
		if next := p.Msg.NextPageToken; len(next) > 0 && (bound == nil || bytes.Compare(next, bound) < 0) {
			bound = next
		}
	}
	items := make([]*wispv1.KeyValue, 0, total)
	for _, p := range pages {
		for _, it := range p.Msg.Items {
			if bound != nil && bytes.Compare(it.Key, bound) >= 0 {
				break // pages are sorted
			}
			items = append(items, it)
		}
	}
	slices.SortFunc(items, func(a, b *wispv1.KeyValue) int { return bytes.Compare(a.Key, b.Key) })

	out := &wispv1.ScanResponse{}
	size := 0
	for i, it := range items {
		size += len(it.Key)
		if !keysOnly {
			size += len(it.Value)
		}
		if i == limit || (size > a.limits.MaxScanBytes && i > 0) {
			out.NextPageToken = it.Key
			return out
		}
		out.Items = append(out.Items, it)
	}
	out.NextPageToken = bound
	return out
}
