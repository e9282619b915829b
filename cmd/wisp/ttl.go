package main

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/sdk/client"
)

func newExpireCmd(g *globals) *cobra.Command {
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "expire KEY TTL",
		Short: "Set the time to live of an existing key",
		Long: `Set KEY to expire TTL from now (such as 10s or 1h), and print its new
version. A missing key is an error (exit 1) and nothing changes.`,
		Example: `  wisp kv expire session/42 10m`,
		Args:    exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			key := args[0]
			if err := keyArg(key); err != nil {
				return err
			}
			ttl, err := time.ParseDuration(args[1])
			if err != nil || ttl <= 0 {
				return usageErrorf("invalid TTL %q: want a positive duration such as 10s or 1h", args[1])
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
			found, version, err := c.Expire(ctx, key, ttl, opts...)
			if err != nil {
				return err
			}
			if !found {
				return &notFoundError{key}
			}
			return writeVersion(g, cmd, key, version)
		},
	}
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "change only if the key is at this version (0: any)")
	return cmd
}

func newPersistCmd(g *globals) *cobra.Command {
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "persist KEY",
		Short: "Remove the expiry of an existing key",
		Long: `Make KEY never expire, and print its new version. A missing key is an
error (exit 1).`,
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
			found, version, err := c.Persist(ctx, key, opts...)
			if err != nil {
				return err
			}
			if !found {
				return &notFoundError{key}
			}
			return writeVersion(g, cmd, key, version)
		},
	}
	cmd.Flags().Uint64Var(&ifVersion, "if-version", 0, "change only if the key is at this version (0: any)")
	return cmd
}

func writeVersion(g *globals, cmd *cobra.Command, key string, version uint64) error {
	out := cmd.OutOrStdout()
	if g.json() {
		return writeJSON(out, struct {
			keyJSON
			Version uint64 `json:"version"`
		}{newKeyJSON(key), version})
	}
	return writef(out, "OK version=%d\n", version)
}

func newTTLCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "ttl KEY",
		Short: "Print the time KEY has left",
		Long: `Print the time KEY has left before it expires (such as 9.512s), or
"none" if it has no expiry. A missing key is an error (exit 1).`,
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
			ttl, found, err := c.TTL(ctx, key, client.WithConsistency(g.readConsistency()))
			if err != nil {
				return err
			}
			if !found {
				return &notFoundError{key}
			}
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, struct {
					keyJSON
					TTLMs int64 `json:"ttl_ms"`
				}{newKeyJSON(key), ttl.Milliseconds()})
			}
			if ttl == 0 {
				return writef(out, "none\n")
			}
			return writef(out, "%v\n", ttl)
		},
	}
}

// Settings names accepted by `wisp config set`.
const (
	settingMaxMemory = "max-memory"
	settingPolicy    = "eviction-policy"
)

func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Show and change cluster-wide settings",
		Args:  cobra.ArbitraryArgs,
		RunE:  groupRunE,
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "get",
		Short: "Print the cluster-wide settings and those in force",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			set, eff, err := c.GetConfig(ctx)
			if err != nil {
				return err
			}
			return writeConfig(g, cmd, set, eff)
		},
	}, &cobra.Command{
		Use:   "set NAME VALUE",
		Short: "Change a cluster-wide setting",
		Long: `Change a setting on every node. NAME is one of:
  max-memory        the memory budget for data on each node, such as 512MiB
                    or 2GB (0: no limit)
  eviction-policy   noeviction, allkeys-lru, allkeys-lfu, volatile-lru,
                    volatile-lfu, volatile-ttl, allkeys-random or
                    volatile-random`,
		Example: `  wisp config set max-memory 512MiB
  wisp config set eviction-policy allkeys-lfu`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var cfg client.Config
			switch args[0] {
			case settingMaxMemory:
				n, err := humanize.ParseBytes(args[1])
				if err != nil || n > 1<<62 {
					return usageErrorf("invalid max-memory %q: want a size such as 512MiB, 2GB or 0", args[1])
				}
				v := int64(n)
				cfg.MaxMemoryBytes = &v
			case settingPolicy:
				v := args[1]
				cfg.EvictionPolicy = &v
			default:
				return usageErrorf("unknown setting %q: want %s or %s", args[0], settingMaxMemory, settingPolicy)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			ctx, cancel := g.context(cmd)
			defer cancel()
			set, eff, err := c.SetConfig(ctx, cfg)
			if err != nil {
				return err
			}
			return writeConfig(g, cmd, set, eff)
		},
	})
	return cmd
}

func writeConfig(g *globals, cmd *cobra.Command, set, eff client.Config) error {
	out := cmd.OutOrStdout()
	type configJSON struct {
		MaxMemoryBytes *int64  `json:"max_memory_bytes"`
		EvictionPolicy *string `json:"eviction_policy"`
	}
	if g.json() {
		return writeJSON(out, struct {
			Cluster   configJSON `json:"cluster"`
			Effective configJSON `json:"effective"`
		}{configJSON(set), configJSON(eff)})
	}
	return writeConfigTable(out, set, eff)
}

// writeConfigTable writes the settings in force and the cluster-wide ones
// as a table whose columns fit their widest cell.
func writeConfigTable(w io.Writer, set, eff client.Config) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tIN FORCE\tCLUSTER-WIDE")
	fmt.Fprintf(tw, "%s\t%s\t%s\n", settingMaxMemory, formatBytes(eff.MaxMemoryBytes), orFlag(set.MaxMemoryBytes != nil, formatBytes(set.MaxMemoryBytes)))
	fmt.Fprintf(tw, "%s\t%s\t%s\n", settingPolicy, deref(eff.EvictionPolicy), orFlag(set.EvictionPolicy != nil, deref(set.EvictionPolicy)))
	return tw.Flush()
}

func formatBytes(v *int64) string {
	switch {
	case v == nil:
		return "-"
	case *v == 0:
		return "unlimited"
	}
	return humanize.IBytes(uint64(*v)) + " (" + strconv.FormatInt(*v, 10) + ")"
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}

func orFlag(set bool, v string) string {
	if !set {
		return "(unset: node flags)"
	}
	return v
}
