package api

// Limits bound what a request may carry. Zero fields take the defaults.
type Limits struct {
	// MaxKeyBytes is the largest key. Default 4 KiB.
	MaxKeyBytes int
	// MaxValueBytes is the largest value. Default 1 MiB.
	MaxValueBytes int
	// MaxRequestBytes is the largest request body; bigger bodies are refused
	// while being read, never buffered whole. Default MaxValueBytes + 1 MiB.
	MaxRequestBytes int
	// MaxBatchOps is the most ops in one Batch. Default 1000.
	MaxBatchOps int
	// MaxScanBytes bounds the keys and values in one Scan page. Default 4 MiB.
	MaxScanBytes int
}

// Defaults for Limits.
const (
	DefaultMaxKeyBytes   = 4 << 10
	DefaultMaxValueBytes = 1 << 20
	DefaultMaxBatchOps   = 1000
	DefaultMaxScanBytes  = 4 << 20
	// defaultScanLimit and maxScanLimit bound Scan's item count.
	defaultScanLimit = 100
	maxScanLimit     = 1000
)

func (l Limits) withDefaults() Limits {
	if l.MaxKeyBytes <= 0 {
		l.MaxKeyBytes = DefaultMaxKeyBytes
	}
	if l.MaxValueBytes <= 0 {
		l.MaxValueBytes = DefaultMaxValueBytes
	}
	if l.MaxRequestBytes <= 0 {
		l.MaxRequestBytes = l.MaxValueBytes + 1<<20
	}
	if l.MaxBatchOps <= 0 {
		l.MaxBatchOps = DefaultMaxBatchOps
	}
	if l.MaxScanBytes <= 0 {
		l.MaxScanBytes = DefaultMaxScanBytes
	}
	return l
}
