package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	wispv1 "github.com/wisp-db/wisp/gen/wisp/v1"
	"github.com/wisp-db/wisp/sdk/client"
)

const (
	operatorTokenEnv = "WISP_OPERATOR_TOKEN"
	// devTokenFile is where `wispd dev` (with its default --data-dir)
	// writes the operator token it made; the CLI reads it when run beside
	// it with neither --operator-token nor the variable set.
	devTokenFile = "wisp-data/operator-token"
	// maxModuleFileBytes bounds the file an upload reads: far above what a
	// node takes (8 MiB by default), so the node's own message says why.
	maxModuleFileBytes = 64 << 20
)

// pluginFlags are the flags of the plugin commands.
type pluginFlags struct {
	g     *globals
	token string
}

// client returns a client that sends the operator token: --operator-token,
// else $WISP_OPERATOR_TOKEN, else the token `wispd dev` wrote in
// ./wisp-data, if any.
func (f *pluginFlags) client() (*client.Client, error) {
	token := f.token
	if token == "" {
		token = os.Getenv(operatorTokenEnv)
	}
	if token == "" {
		if b, err := os.ReadFile(devTokenFile); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	c, err := client.New(f.g.endpoint, client.WithMaxAttempts(maxAttempts), client.WithMaxDialFailures(maxDialFailures),
		client.WithOperatorToken(token))
	if err != nil {
		return nil, usageErrorf("invalid --endpoint %q: want a URL such as %s", f.g.endpoint, defaultEndpoint)
	}
	return c, nil
}

func newPluginCmd(g *globals) *cobra.Command {
	f := &pluginFlags{g: g}
	cmd := &cobra.Command{
		Use:   "plugin",
		Short: "Upload, activate and list WebAssembly plugins",
		Long: `Plugins are WebAssembly modules that decide what a node evicts (kind
eviction) or the TTL a write gets (kind ttl); docs/PLUGINS.md describes
them and how to write one (wisp plugin init scaffolds one).

Uploading, activating, deactivating and rolling back are operator actions:
they need the cluster's operator token (--operator-token, or
` + operatorTokenEnv + `; run beside ` + "`wispd dev`" + `, the token it wrote in
./` + devTokenFile + ` is used). Listing needs none.`,
		Args: cobra.ArbitraryArgs,
		RunE: groupRunE,
	}
	cmd.PersistentFlags().StringVar(&f.token, "operator-token", "", "the cluster's operator token (env "+operatorTokenEnv+")")
	cmd.AddCommand(newPluginUploadCmd(f), newPluginActivateCmd(f), newPluginDeactivateCmd(f), newPluginRollbackCmd(f), newPluginListCmd(f), newPluginWhatifCmd(f), newPluginInitCmd())
	return cmd
}

func newPluginUploadCmd(f *pluginFlags) *cobra.Command {
	var name, kind string
	cmd := &cobra.Command{
		Use:   "upload FILE",
		Short: "Validate a module and store it as a plugin's next version",
		Long: `Upload FILE (a WebAssembly module) as the next version of plugin --name.
The node that takes it checks it first: its size (at most 8 MiB by default),
that it compiles, imports nothing the host does not offer, exports the ABI
version and the kind's entry point, and answers a self-test call. Uploading
the same module again gives the version it already has. An uploaded version
does nothing until it is activated.`,
		Example: `  wisp plugin upload gdsf.wasm --kind eviction --name gdsf
  wisp plugin activate gdsf@1`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" || kind == "" {
				return usageErrorf("--name and --kind are required")
			}
			wasm, err := readModule(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := f.g.context(cmd)
			defer stop()
			res, err := c.UploadPlugin(ctx, name, kind, wasm)
			if err != nil {
				return err
			}
			if f.g.json() {
				return writeProtoJSON(cmd.OutOrStdout(), res)
			}
			if res.Existed {
				return writef(cmd.OutOrStdout(), "%s@%d is this module already (sha256 %s); activate it with wisp plugin activate %s@%d\n", name, res.Version, res.Sha256[:12], name, res.Version)
			}
			return writef(cmd.OutOrStdout(), "uploaded %s@%d (%s, sha256 %s); activate it with wisp plugin activate %s@%d\n", name, res.Version, humanize.IBytes(uint64(len(wasm))), res.Sha256[:12], name, res.Version)
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the plugin's name: lowercase letters, digits, - and _, starting with a letter")
	cmd.Flags().StringVar(&kind, "kind", "", "what the plugin decides: eviction or ttl")
	return cmd
}

// readModule reads a module file, bounded.
func readModule(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	b, err := io.ReadAll(io.LimitReader(fh, maxModuleFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxModuleFileBytes {
		return nil, fmt.Errorf("%s is over %s: not a plugin module", path, humanize.IBytes(maxModuleFileBytes))
	}
	return b, nil
}

// parseVersioned splits NAME@VERSION.
func parseVersioned(s string) (string, uint32, error) {
	name, v, ok := strings.Cut(s, "@")
	n, err := strconv.ParseUint(v, 10, 32)
	if !ok || name == "" || err != nil || n == 0 {
		return "", 0, usageErrorf("%q: want NAME@VERSION, such as gdsf@2 (wisp plugin list shows the versions)", s)
	}
	return name, uint32(n), nil
}

func newPluginActivateCmd(f *pluginFlags) *cobra.Command {
	var prefix string
	cmd := &cobra.Command{
		Use:   "activate NAME@VERSION",
		Short: "Make a plugin version active, for all keys or a prefix",
		Long: `Make VERSION the active version of plugin NAME: for every key, or with
--prefix for the keys under it (where prefixes nest, the longest wins; keys
no plugin covers get the built-in policy). Every node switches at the same
cluster map epoch; wisp plugin list shows when each has loaded it. The
version active before is kept loaded: wisp plugin rollback returns to it at
once.`,
		Example: `  wisp plugin activate gdsf@2
  wisp plugin activate sessionttl@1 --prefix session/`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, version, err := parseVersioned(args[0])
			if err != nil {
				return err
			}
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := f.g.context(cmd)
			defer stop()
			epoch, err := c.ActivatePlugin(ctx, name, version, prefix)
			if err != nil {
				return err
			}
			if f.g.json() {
				return writeJSON(cmd.OutOrStdout(), struct {
					Name    string `json:"name"`
					Version uint32 `json:"version"`
					Prefix  string `json:"prefix"`
					Epoch   uint64 `json:"epoch"`
				}{name, version, prefix, epoch})
			}
			return writef(cmd.OutOrStdout(), "%s@%d is active for %s (cluster map epoch %d)\n", name, version, scopeText(prefix), epoch)
		},
	}
	cmd.Flags().StringVar(&prefix, "prefix", "", "apply only to keys with this prefix")
	return cmd
}

func scopeText(prefix string) string {
	if prefix == "" {
		return "all keys"
	}
	return fmt.Sprintf("keys under %q", prefix)
}

func newPluginDeactivateCmd(f *pluginFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "deactivate NAME",
		Short: "Stop using a plugin: the built-in policy decides again",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := f.g.context(cmd)
			defer stop()
			epoch, err := c.DeactivatePlugin(ctx, args[0])
			if err != nil {
				return err
			}
			if f.g.json() {
				return writeJSON(cmd.OutOrStdout(), struct {
					Name  string `json:"name"`
					Epoch uint64 `json:"epoch"`
				}{args[0], epoch})
			}
			return writef(cmd.OutOrStdout(), "%s is inactive (cluster map epoch %d); wisp plugin rollback %s activates its last version again\n", args[0], epoch, args[0])
		},
	}
}

func newPluginRollbackCmd(f *pluginFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "rollback NAME",
		Short: "Make the previously active version of a plugin active again",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := f.g.context(cmd)
			defer stop()
			version, epoch, err := c.RollbackPlugin(ctx, args[0])
			if err != nil {
				return err
			}
			if f.g.json() {
				return writeJSON(cmd.OutOrStdout(), struct {
					Name    string `json:"name"`
					Version uint32 `json:"version"`
					Epoch   uint64 `json:"epoch"`
				}{args[0], version, epoch})
			}
			return writef(cmd.OutOrStdout(), "%s@%d is active again (cluster map epoch %d)\n", args[0], version, epoch)
		},
	}
}

func newPluginListCmd(f *pluginFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the plugins, their versions, and each node's state",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client()
			if err != nil {
				return err
			}
			ctx, stop := f.g.context(cmd)
			defer stop()
			res, err := c.ListPlugins(ctx)
			if err != nil {
				return err
			}
			if f.g.json() {
				return writeProtoJSON(cmd.OutOrStdout(), res)
			}
			return printPlugins(cmd.OutOrStdout(), res)
		},
	}
}

// printPlugins writes the plugin table, and under each active plugin its
// nodes' states.
func printPlugins(out io.Writer, res *wispv1.ListPluginsResponse) error {
	if len(res.Plugins) == 0 {
		return writef(out, "No plugins (cluster map epoch %d). Upload one with wisp plugin upload; docs/PLUGINS.md says how to write one.\n", res.Epoch)
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "PLUGIN\tKIND\tACTIVE\tFOR\tPREVIOUS\tVERSIONS\n")
	for _, p := range res.Plugins {
		var versions []string
		for _, v := range p.Versions {
			versions = append(versions, fmt.Sprintf("%d (%s, %s, %s)", v.Version, v.Sha256[:12], humanize.IBytes(uint64(v.SizeBytes)), time.UnixMilli(v.UploadedUnixMs).Format("2006-01-02 15:04")))
		}
		active, scope, previous := "-", "-", "-"
		if p.Active != 0 {
			active, scope = strconv.Itoa(int(p.Active)), scopeText(p.Prefix)
		}
		if p.Previous != 0 {
			previous = strconv.Itoa(int(p.Previous))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Kind, active, scope, previous, strings.Join(versions, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range res.Plugins {
		if len(p.Nodes) == 0 {
			continue
		}
		if err := writef(out, "\n%s@%d on each node:\n", p.Name, p.Active); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "NODE\tSTATE\tCALLS\tFALLBACKS\tP99\tLAST ERROR\n")
		for _, n := range p.Nodes {
			lastErr := n.LastError
			if lastErr == "" {
				lastErr = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%.2fms\t%s\n", n.NodeId, n.State, n.Calls, n.Fallbacks, n.P99CallMs, lastErr)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}
