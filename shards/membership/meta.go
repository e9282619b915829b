package membership

// The metadata each node gossips, and its wire form: memberlist carries it as
// the node's meta bytes (at most memberlist.MetaMaxSize, 512) in every alive
// message and push/pull exchange.
//
// The encoding starts with the format version byte, metaVersion (1); a
// decoder refuses any other value. The fields follow in this order, with
// nothing between them and nothing after the last:
//
//	byte     format version (1)
//	string   NodeID             1 to 64 bytes of [A-Za-z0-9._-]
//	string   APIURL             at most 128 bytes: http(s)://host:port[/]
//	string   RaftAddr           at most 96 bytes: host:port
//	string   Zone               at most 64 bytes of [A-Za-z0-9._-], may be empty
//	string   Build              at most 64 bytes of printable ASCII, no space, may be empty
//	uvarint  MemoryUsedBytes
//	uvarint  MemoryBudgetBytes  0: no budget
//	uvarint  flags              bit 0 Draining, bit 1 Leaving, bit 2
//	                            Bootstrapped, bit 3 Expecting (since the
//	                            first release of bootstrap-expect: an older
//	                            node ignores it); other bits are ignored (left for
//	                            later flags, so an older node still accepts a
//	                            newer one that sets them)
//
// where a string is its length as a uvarint, then that many bytes. A decoder
// checks each length against the field's bound before taking the bytes, and
// validates every field as Meta.Validate does, so what it returns is always
// usable: an id that is safe in logs and file names, a URL and an address
// that parse. The largest encoding is metaSizeMax (444) bytes, under
// memberlist's limit (checked at compile time below).
//
// A later format adds fields under a new version byte. Nodes of the two
// versions must then decode both during a rolling upgrade, and encode the
// old one until every node reads the new.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/memberlist"
)

// metaVersion is the format version byte that opens every encoded Meta.
const metaVersion = 1

// Field bounds, in bytes. Their sum with the framing is metaSizeMax.
const (
	idSizeMax       = 64
	apiURLSizeMax   = 128
	raftAddrSizeMax = 96
	zoneSizeMax     = 64
	buildSizeMax    = 64
	hostSizeMax     = 253 // a DNS name's limit
)

// metaSizeMax is the longest encoding appendMeta writes: the version byte,
// each string with a length prefix (1 byte up to 127, 2 bytes for APIURL's
// 128), two memory uvarints of at most 10 bytes and the flags, one byte.
const metaSizeMax = 1 + (1 + idSizeMax) + (2 + apiURLSizeMax) + (1 + raftAddrSizeMax) +
	(1 + zoneSizeMax) + (1 + buildSizeMax) + 2*binary.MaxVarintLen64 + 1

// A negative difference does not compile: the largest Meta fits memberlist's
// limit, so memberlist never panics on our NodeMeta.
const _ = uint(memberlist.MetaMaxSize - metaSizeMax)

// Flag bits of the encoding.
const (
	flagDraining     = 1 << 0
	flagLeaving      = 1 << 1
	flagBootstrapped = 1 << 2
	flagExpecting    = 1 << 3
)

// ErrMalformedMeta is wrapped by every error decoding gossiped metadata: it is
// empty, truncated, oversized, has trailing bytes or an unknown format
// version, or holds a field that does not validate.
var ErrMalformedMeta = errors.New("membership: malformed metadata")

// Meta is what a node tells every other node about itself through gossip.
// Its encoding is bounded (see Validate); the zero Meta is not valid (it has
// no NodeID).
type Meta struct {
	// NodeID is the node's id: 1 to 64 bytes of [A-Za-z0-9._-]. It is also
	// the node's memberlist name; gossip whose name and NodeID differ is
	// refused.
	NodeID string
	// APIURL is where the node serves the Connect API: http:// or https://,
	// a host and a port, no path beyond "/", at most 128 bytes.
	APIURL string
	// RaftAddr is the node's Raft address (host:port), at most 96 bytes.
	RaftAddr string
	// Zone is the failure zone placement spreads replicas over; empty for
	// none. At most 64 bytes of [A-Za-z0-9._-].
	Zone string
	// Build is the binary's version (buildinfo.Get().Version when Start or
	// UpdateMeta is given an empty one), at most 64 bytes of printable ASCII
	// without spaces.
	Build string
	// MemoryUsedBytes is the memory the node's data takes now.
	MemoryUsedBytes uint64
	// MemoryBudgetBytes is the node's memory budget; 0 for none.
	MemoryBudgetBytes uint64
	// Draining says the node is being emptied of replicas; it keeps serving.
	Draining bool
	// Bootstrapped says the node has a cluster map: it bootstrapped a
	// cluster or was added to one. Nodes start without, and those that
	// gossip it false count toward `wispd start --bootstrap-expect`.
	Bootstrapped bool
	// Expecting says the node was started to bootstrap a new cluster
	// together with others (`wispd start --bootstrap-expect`) and has no
	// cluster map yet: it counts toward the expected number. Nodes that only
	// join never set it.
	Expecting bool
	// Leaving is set by Leave before the node leaves the cluster, so peers
	// can tell a graceful leave from a failure. UpdateMeta keeps the value
	// the node has; a caller cannot set it.
	Leaving bool
}

// Validate reports whether m can be gossiped: every field within its bound
// and of the syntax its doc comment gives.
func (m *Meta) Validate() error {
	if err := validateID(m.NodeID); err != nil {
		return fmt.Errorf("NodeID: %w", err)
	}
	if err := validateAPIURL(m.APIURL); err != nil {
		return fmt.Errorf("APIURL %q: %w", clip(m.APIURL), err)
	}
	if err := validateHostPort(m.RaftAddr, raftAddrSizeMax); err != nil {
		return fmt.Errorf("RaftAddr %q: %w", clip(m.RaftAddr), err)
	}
	if m.Zone != "" {
		if err := validateName(m.Zone, zoneSizeMax); err != nil {
			return fmt.Errorf("Zone: %w", err)
		}
	}
	if len(m.Build) > buildSizeMax {
		return fmt.Errorf("Build: %d bytes, more than %d", len(m.Build), buildSizeMax)
	}
	for i := 0; i < len(m.Build); i++ {
		if c := m.Build[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("Build %q: byte %#x at %d is not printable ASCII", clip(m.Build), c, i)
		}
	}
	return nil
}

// ValidateID reports whether id can be a node id: 1 to 64 bytes of
// [A-Za-z0-9._-].
func ValidateID(id string) error { return validateID(id) }

// ValidateZone reports whether zone can be a failure zone: at most 64
// bytes of [A-Za-z0-9._-] (empty: none).
func ValidateZone(zone string) error { return validateName(zone, zoneSizeMax) }

func validateID(id string) error {
	if id == "" {
		return errors.New("empty")
	}
	return validateName(id, idSizeMax)
}

// validateName checks s against [A-Za-z0-9._-]{0,max}.
func validateName(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, more than %d", len(s), max)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%q: byte %#x at %d is not one of [A-Za-z0-9._-]", clip(s), c, i)
		}
	}
	return nil
}

// validateAPIURL checks that s is http(s)://host:port, optionally with a
// trailing "/", and nothing else (no user, query or fragment).
func validateAPIURL(s string) error {
	if len(s) > apiURLSizeMax {
		return fmt.Errorf("%d bytes, more than %d", len(s), apiURLSizeMax)
	}
	if !printable(s) {
		return errors.New("not printable ASCII")
	}
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("does not parse as a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme is not http or https")
	}
	if u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "" || (u.Path != "" && u.Path != "/") || u.RawPath != "" {
		return errors.New("has more than scheme://host:port")
	}
	return validateHostPort(u.Host, apiURLSizeMax)
}

// validateHostPort checks that s is host:port: the host an IP address
// (IPv6 in brackets, without a zone) or a DNS-like name, the port 1 to
// 65535 in decimal.
func validateHostPort(s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%d bytes, more than %d", len(s), max)
	}
	if !printable(s) {
		return errors.New("not printable ASCII")
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("not host:port")
	}
	if err := validatePort(port); err != nil {
		return err
	}
	return validateHost(host)
}

func validatePort(port string) error {
	if port == "" || len(port) > 5 {
		return errors.New("port is not 1 to 65535")
	}
	for i := 0; i < len(port); i++ {
		if port[i] < '0' || port[i] > '9' {
			return errors.New("port is not decimal")
		}
	}
	if p, _ := strconv.Atoi(port); p < 1 || p > 65535 {
		return errors.New("port is not 1 to 65535")
	}
	return nil
}

func validateHost(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if strings.Contains(host, ":") { // only an IPv6 address may hold a colon
		if ip := net.ParseIP(host); ip == nil {
			return errors.New("host is not an IP address")
		}
		return nil
	}
	if len(host) > hostSizeMax {
		return errors.New("host is too long")
	}
	if host[0] == '.' || host[0] == '-' {
		return errors.New("host starts with . or -")
	}
	if err := validateName(host, hostSizeMax); err != nil {
		return errors.New("host is not an IP address or a name of [A-Za-z0-9._-]")
	}
	return nil
}

// printable reports whether s is printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// clip shortens s for an error message or a log line: invalid input may be
// long, and is quoted (%q) wherever it is shown.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

// appendMeta appends the encoding of m, which must be valid, to b.
func appendMeta(b []byte, m *Meta) []byte {
	b = append(b, metaVersion)
	for _, s := range []string{m.NodeID, m.APIURL, m.RaftAddr, m.Zone, m.Build} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = binary.AppendUvarint(b, m.MemoryUsedBytes)
	b = binary.AppendUvarint(b, m.MemoryBudgetBytes)
	var flags uint64
	if m.Draining {
		flags |= flagDraining
	}
	if m.Leaving {
		flags |= flagLeaving
	}
	if m.Bootstrapped {
		flags |= flagBootstrapped
	}
	if m.Expecting {
		flags |= flagExpecting
	}
	return binary.AppendUvarint(b, flags)
}

// encodeMeta validates m and returns its encoding.
func encodeMeta(m *Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := appendMeta(make([]byte, 0, 128), m)
	if len(b) > metaSizeMax {
		panic(fmt.Sprintf("membership: encoded meta is %d bytes, more than metaSizeMax %d", len(b), metaSizeMax))
	}
	return b, nil
}

// decodeMeta decodes and validates one encoded Meta. The strings it returns
// are copies: b may be memberlist's buffer.
func decodeMeta(b []byte) (Meta, error) {
	var m Meta
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedMeta, len(b), memberlist.MetaMaxSize)
	}
	r := metaReader{b: b}
	switch {
	case len(b) == 0:
		r.err = errors.New("empty")
	case b[0] != metaVersion:
		r.err = fmt.Errorf("unknown format version %d", b[0])
	default:
		r.b = b[1:]
	}
	m.NodeID = r.str("NodeID", idSizeMax)
	m.APIURL = r.str("APIURL", apiURLSizeMax)
	m.RaftAddr = r.str("RaftAddr", raftAddrSizeMax)
	m.Zone = r.str("Zone", zoneSizeMax)
	m.Build = r.str("Build", buildSizeMax)
	m.MemoryUsedBytes = r.uvarint("MemoryUsedBytes")
	m.MemoryBudgetBytes = r.uvarint("MemoryBudgetBytes")
	flags := r.uvarint("flags")
	m.Draining = flags&flagDraining != 0
	m.Leaving = flags&flagLeaving != 0
	m.Bootstrapped = flags&flagBootstrapped != 0
	m.Expecting = flags&flagExpecting != 0
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%d trailing bytes", len(r.b))
	}
	if r.err == nil {
		r.err = m.Validate()
	}
	if r.err != nil {
		return Meta{}, fmt.Errorf("%w: %w", ErrMalformedMeta, r.err)
	}
	return m, nil
}

// metaReader reads the fields of one encoded Meta in order. The first
// problem it meets is kept in err; every later read then returns a zero
// value, so decodeMeta reads all fields unconditionally and checks once.
type metaReader struct {
	b   []byte // the bytes not read yet
	err error
}

func (r *metaReader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	switch {
	case n == 0:
		r.err = fmt.Errorf("%s: truncated", field)
		return 0
	case n < 0:
		r.err = fmt.Errorf("%s: varint overflows 64 bits", field)
		return 0
	}
	r.b = r.b[n:]
	return v
}

// str reads a length-prefixed string of at most max bytes.
func (r *metaReader) str(field string, max int) string {
	n := r.uvarint(field)
	if r.err != nil {
		return ""
	}
	if n > uint64(max) {
		r.err = fmt.Errorf("%s: length %d, more than %d", field, n, max)
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%s: length %d exceeds the %d bytes left", field, n, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
