package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/sdk/client"
)

// scanPageSize is the items per Scan call. Values can be up to 1 MiB, so
// this keeps a page, and the memory it takes, bounded (~100 MiB at worst).
const scanPageSize = 100

// keyJSON is the key of a write's JSON output.
type keyJSON struct {
	Key         string `json:"key"`
	KeyEncoding string `json:"key_encoding,omitempty"`
}

func newKeyJSON(key string) keyJSON {
	var k keyJSON
	k.Key, k.KeyEncoding = encodeBytes([]byte(key))
	return k
}

// notFoundError is get's error for a missing key.
type notFoundError struct{ key string }

func (e *notFoundError) Error() string { return "key not found: " + strconv.Quote(e.key) }

// keyArg checks a KEY argument.
func keyArg(key string) error {
	if key == "" {
		return usageErrorf("KEY must not be empty")
	}
	return nil
}

func newKVCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write keys",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(newPutCmd(g), newGetCmd(g), newMGetCmd(g), newDelCmd(g), newIncrCmd(g), newScanCmd(g),
		newExpireCmd(g), newPersistCmd(g), newTTLCmd(g))
	return cmd
}

// maxValueReadBytes bounds what put reads from stdin or --file: far above
// the server's value limit (--max-value-bytes, 1 MiB by default), so that
// the server, which knows its limit, refuses with its message, yet low
// enough that a wrong file or an endless pipe cannot fill this process's
// memory.
const maxValueReadBytes = 64 << 20

// stdinValue is the VALUE argument that makes put read stdin.
const stdinValue = "-"

func newPutCmd(g *globals) *cobra.Command {
	var (
		ttl       time.Duration
		ifVersion uint64
		ifAbsent  bool
		file      string
	)
	cmd := &cobra.Command{
		Use:   "put KEY VALUE|-|--file PATH",
		Short: "Write VALUE to KEY and print its new version",
		Long: `Write VALUE to KEY and print the key's new version.

The value is the VALUE argument; with - in its place, everything read from
stdin; with --file PATH instead, the file's contents. Values read from stdin
or a file are taken byte for byte (a final newline stays), up to 64 MiB; the
server refuses values over its own limit (--max-value-bytes, 1 MiB by
default). To write the one-byte value "-", pipe it: printf - | wisp kv put KEY -

With --if-version or --if-absent the write happens only if the key is at that
version, or absent; otherwise it fails and says the key's current version.`,
		Example: `  wisp kv put greeting hello
  wisp kv put session/42 alice --ttl 30m
  wisp kv put config v2 --if-version 7
  wisp kv put page/index --file index.html
  gzip -c report.csv | wisp kv put report.csv.gz -`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := keyArg(key); err != nil {
				return err
			}
			fileSet := cmd.Flags().Changed("file")
			switch {
			case fileSet && len(args) == 2:
				return usageErrorf("give VALUE or --file, not both")
			case fileSet && file == "":
				return usageErrorf("--file needs a path")
			case !fileSet && len(args) == 1:
				return usageErrorf("missing VALUE: give it as an argument, - to read stdin, or --file PATH")
			}
			if ttl < 0 {
				return usageErrorf("invalid --ttl %v: want 0 (none) or more", ttl)
			}
			if ifVersion != 0 && ifAbsent {
				return usageErrorf("--if-version and --if-absent cannot be used together")
			}
			var value []byte
			switch {
			case fileSet:
				v, err := readValueFile(file)
				if err != nil {
					return err
				}
				value = v
			case args[1] == stdinValue:
				v, err := readValue(cmd.InOrStdin(), "stdin")
				if err != nil {
					return err
				}
				value = v
			default:
				value = []byte(args[1])
			}
			var opts []client.WriteOption
			if ttl > 0 {
				opts = append(opts, client.WithTTL(ttl))
			}
			if ifVersion != 0 {
				opts = append(opts, client.WithIfVersion(ifVersion))
			}
			if ifAbsent {
				opts = append(opts, client.WithIfAbsent())
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			version, err := c.Put(ctx, key, value, opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, struct {
					keyJSON
					Version uint64 `json:"version"`
				}{newKeyJSON(key), version})
			}
			return writef(out, "OK version=%d\n", version)
		},
	}
	f := cmd.Flags()
	f.DurationVar(&ttl, "ttl", 0, "expire the key after this long, such as 30s or 1h (0: never)")
	f.Uint64Var(&ifVersion, "if-version", 0, "write only if the key is at this version (0: any)")
	f.BoolVar(&ifAbsent, "if-absent", false, "write only if the key does not exist")
	f.StringVar(&file, "file", "", "read the value from this file instead of the VALUE argument (at most 64 MiB)")
	return cmd
}

// readValueFile reads the value in the file at path, refusing one over
// maxValueReadBytes before reading it when its size is known.
func readValueFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read --file: %w", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() && fi.Size() > maxValueReadBytes {
		return nil, errValueTooLarge(path)
	}
	return readValue(f, path)
}

// readValue reads all of r, the value from what (stdin or a path), up to
// maxValueReadBytes.
func readValue(r io.Reader, what string) ([]byte, error) {
	v, err := io.ReadAll(io.LimitReader(r, maxValueReadBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read value from %s: %w", what, err)
	}
	if len(v) > maxValueReadBytes {
		return nil, errValueTooLarge(what)
	}
	return v, nil
}

func errValueTooLarge(what string) error {
	return fmt.Errorf("value from %s is over %s: wisp kv put reads at most that (and the server's limit, --max-value-bytes, is 1 MiB unless set)",
		what, humanize.IBytes(maxValueReadBytes))
}

func newGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "get KEY",
		Short: "Print the value of KEY",
		Long: `Print the value of KEY: in text, the raw value and a newline.

If the key does not exist, print "key not found" to stderr and exit 1.`,
		Example: `  wisp kv get greeting
  wisp kv get greeting --consistency stale --output json`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := keyArg(key); err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			item, found, err := c.Get(ctx, key, client.WithConsistency(g.readConsistency()))
			if err != nil {
				return err
			}
			if !found {
				return &notFoundError{key}
			}
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, newItemJSON(item, true))
			}
			return writeLine(out, item.Value)
		},
	}
}

func newMGetCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "mget KEY...",
		Short: "Print the values of several keys, read in one call",
		Long: `Print the values of several keys, read in one call (each shard's keys
with one read). In text, one line per key, in the order given: the key, a
tab and the value, or "(not found)". With --output json, the keys found as
items and the missing keys in a list. Missing keys are not an error.`,
		Example: `  wisp kv mget greeting counter fresh
  wisp kv mget a b c --consistency stale --output json`,
		Args: cobra.RangeArgs(1, client.MaxGetManyKeys),
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, k := range args {
				if err := keyArg(k); err != nil {
					return err
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			items, err := c.GetMany(ctx, args, client.WithConsistency(g.readConsistency()))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json() {
				res := struct {
					Items   []itemJSON `json:"items"`
					Missing []string   `json:"missing"`
				}{Items: []itemJSON{}, Missing: []string{}}
				for _, k := range args {
					if it, ok := items[k]; ok {
						res.Items = append(res.Items, newItemJSON(it, true))
					} else {
						res.Missing = append(res.Missing, k)
					}
				}
				return writeJSON(out, res)
			}
			for _, k := range args {
				v := []byte("(not found)")
				if it, ok := items[k]; ok {
					v = it.Value
				}
				if err := writeLine(out, []byte(k), []byte("\t"), v); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

func newDelCmd(g *globals) *cobra.Command {
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete", "rm"},
		Short:   "Delete KEY",
		Long: `Delete KEY and print whether it existed and the version of the delete.
Deleting a missing key succeeds with deleted=false.`,
		Example: `  wisp kv del greeting
  wisp kv del config --if-version 8`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := keyArg(key); err != nil {
				return err
			}
			var opts []client.WriteOption
			if ifVersion != 0 {
				opts = append(opts, client.WithIfVersion(ifVersion))
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			deleted, version, err := c.Delete(ctx, key, opts...)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, struct {
					keyJSON
					Deleted bool   `json:"deleted"`
					Version uint64 `json:"version"`
				}{newKeyJSON(key), deleted, version})
			}
			return writef(out, "OK deleted=%t version=%d\n", deleted, version)
		},
	}
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "delete only if the key is at this version (0: any)")
	return cmd
}

func newIncrCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "incr KEY [DELTA]",
		Short: "Add DELTA (default 1) to the integer at KEY and print the result",
		Long: `Add DELTA (default 1, may be negative) to the decimal integer at KEY and
print the new value. A missing key counts as 0.

Flags go before KEY, so that a negative DELTA is not taken for a flag.`,
		Example: `  wisp kv incr visits
  wisp kv incr stock/apples -3
  wisp kv --output json incr visits 10`,
		Args: rangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := keyArg(key); err != nil {
				return err
			}
			delta := int64(1)
			if len(args) == 2 {
				var err error
				if delta, err = strconv.ParseInt(args[1], 10, 64); err != nil {
					return usageErrorf("invalid DELTA %q: want an integer", args[1])
				}
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			value, version, err := c.Increment(ctx, key, delta)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, struct {
					keyJSON
					Value   int64  `json:"value"`
					Version uint64 `json:"version"`
				}{newKeyJSON(key), value, version})
			}
			return writef(out, "%d\n", value)
		},
	}
	// Stop parsing flags at KEY, so that "incr KEY -3" works.
	cmd.Flags().SetInterspersed(false)
	return cmd
}

func newScanCmd(g *globals) *cobra.Command {
	var (
		limit    int
		start    string
		keysOnly bool
	)
	cmd := &cobra.Command{
		Use:   "scan [PREFIX]",
		Short: "List keys in order, with their values",
		Long: `List the keys that start with PREFIX (all keys if none), in order, at most
--limit of them (0: all), fetching pages as needed.

Text output is one "KEY<TAB>VALUE" line per key, raw, or just KEY with
--keys-only.`,
		Example: `  wisp kv scan user/
  wisp kv scan --keys-only --limit 0
  wisp kv scan user/ --start user/m --output json`,
		Args: rangeArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return usageErrorf("invalid --limit %d: want 0 (all) or more", limit)
			}
			opts := client.ScanOptions{
				Start:       start,
				Limit:       scanPageSize,
				KeysOnly:    keysOnly,
				Consistency: g.readConsistency(),
			}
			if len(args) == 1 {
				opts.Prefix = args[0]
			}
			if limit > 0 {
				opts.Limit = min(limit, scanPageSize)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			out := cmd.OutOrStdout()
			var w itemWriter = &textItemWriter{w: out, keysOnly: keysOnly}
			if g.json() {
				w = &jsonItemWriter{w: out, keysOnly: keysOnly}
			}
			n := 0
			for item, err := range c.ScanAll(ctx, opts) {
				if err != nil {
					return err
				}
				if err := w.write(item); err != nil {
					return err
				}
				if n++; n == limit {
					break
				}
			}
			return w.close()
		},
	}
	f := cmd.Flags()
	f.IntVar(&limit, "limit", 50, "list at most this many keys (0: all)")
	f.StringVar(&start, "start", "", "start at this key (inclusive)")
	f.BoolVar(&keysOnly, "keys-only", false, "list keys without values")
	return cmd
}

// itemWriter writes scan's items as they arrive, so that a long scan does
// not collect in memory.
type itemWriter interface {
	write(client.Item) error
	close() error
}

type textItemWriter struct {
	w        io.Writer
	keysOnly bool
}

func (t *textItemWriter) write(it client.Item) error {
	if t.keysOnly {
		return writeLine(t.w, []byte(it.Key))
	}
	return writeLine(t.w, []byte(it.Key), []byte{'\t'}, it.Value)
}

func (t *textItemWriter) close() error { return nil }

// jsonItemWriter writes {"items": [...]} one item at a time, indented like
// writeJSON.
type jsonItemWriter struct {
	w        io.Writer
	keysOnly bool
	n        int // items written
}

func (j *jsonItemWriter) write(it client.Item) error {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("    ", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(newItemJSON(it, !j.keysOnly)); err != nil {
		return err
	}
	sep := ",\n    "
	if j.n == 0 {
		sep = "{\n  \"items\": [\n    "
	}
	j.n++
	return writef(j.w, "%s%s", sep, bytes.TrimSuffix(b.Bytes(), []byte{'\n'}))
}

func (j *jsonItemWriter) close() error {
	if j.n == 0 {
		return writef(j.w, "{\n  \"items\": []\n}\n")
	}
	return writef(j.w, "\n  ]\n}\n")
}
