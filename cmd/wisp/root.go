package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/sdk/client"
)

// Exit codes; see doc.go.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

const (
	defaultEndpoint = "http://127.0.0.1:8080"
	endpointEnv     = "WISP_ENDPOINT"
	defaultTimeout  = 10 * time.Second
	// maxAttempts is the client's retry bound for one call: the most it
	// allows. --timeout is the real bound, so that a command rides out a
	// leader election (a second or two) instead of failing after the
	// library default's few hundred milliseconds of backoff.
	maxAttempts = 20
	// maxDialFailures is how many attempts of a call may fail to connect
	// before the command says it cannot reach the endpoint: nothing
	// listening there is not worth 20 retries. Two let a call that the
	// client routed to a node that just died fall back to --endpoint.
	maxDialFailures = 2
)

// usageError is a bad flag or argument: exit 2 and point at --help.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// globals are the persistent flags, shared by every command.
type globals struct {
	endpoint    string
	output      string // "text" or "json"
	consistency string // "linearizable" or "stale"
	timeout     time.Duration
	routing     bool // send keyed calls to their shard's leader
}

func (g *globals) json() bool { return g.output == "json" }

// readConsistency returns the --consistency flag as a client.Consistency.
// The value was checked in the root's PersistentPreRunE.
func (g *globals) readConsistency() client.Consistency {
	if g.consistency == "stale" {
		return client.Stale
	}
	return client.Linearizable
}

// client returns a client for --endpoint.
func (g *globals) client() (*client.Client, error) {
	c, err := client.New(g.endpoint, client.WithMaxAttempts(maxAttempts), client.WithMaxDialFailures(maxDialFailures),
		client.WithRouting(g.routing))
	if err != nil {
		return nil, usageErrorf("invalid --endpoint %q: want a URL such as %s", g.endpoint, defaultEndpoint)
	}
	return c, nil
}

// context bounds a command by --timeout.
func (g *globals) context(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	if g.timeout > 0 {
		return context.WithTimeout(cmd.Context(), g.timeout)
	}
	return context.WithCancel(cmd.Context())
}

// newRootCmd returns the wisp command tree, reading stdin (kv put KEY -)
// and writing to stdout and stderr. Run it with run, which prints errors
// and picks the exit code.
func newRootCmd(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "wisp",
		Short: "Command-line client for the Wisp key-value store",
		Long: `wisp reads and writes keys in a Wisp cluster and reports its status.

Commands exit 0 on success, 1 on failure (including "key not found"), and
2 on a usage error.`,
		Args:          cobra.ArbitraryArgs,
		RunE:          groupRunE,
		SilenceErrors: true,
		SilenceUsage:  true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			switch g.output {
			case "text", "json":
			default:
				return usageErrorf("invalid --output %q: want text or json", g.output)
			}
			switch g.consistency {
			case "linearizable", "stale":
			default:
				return usageErrorf("invalid --consistency %q: want linearizable or stale", g.consistency)
			}
			if g.timeout < 0 {
				return usageErrorf("invalid --timeout %v: want 0 (none) or more", g.timeout)
			}
			return nil
		},
	}
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	endpoint := os.Getenv(endpointEnv)
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.endpoint, "endpoint", endpoint, "base URL of any node (env "+endpointEnv+")")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.StringVar(&g.consistency, "consistency", "linearizable", "read consistency: linearizable or stale")
	pf.DurationVar(&g.timeout, "timeout", defaultTimeout, "time limit for the whole command, retries included (0: none)")
	pf.BoolVar(&g.routing, "routing", true, "send each key's calls straight to its shard's leader (false: to --endpoint, which forwards them)")

	root.AddCommand(newKVCmd(g), newClusterCmd(g), newConfigCmd(g), newPluginCmd(g), newTraceCmd(g), newBenchCmd(g), newVersionCmd(g))
	return root
}

// groupRunE runs a command that only groups subcommands: with no
// arguments it prints help, otherwise the argument is an unknown command.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
}

// exactArgs is cobra.ExactArgs reporting a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return wrapArgs(cobra.ExactArgs(n))
}

// rangeArgs is cobra.RangeArgs reporting a usage error.
func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return wrapArgs(cobra.RangeArgs(lo, hi))
}

func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return &usageError{err}
		}
		return nil
	}
}

// run runs the wisp command line args and returns the exit code. Errors go
// to stderr as "Error: MESSAGE".
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd(stdin, stdout, stderr)
	if args == nil {
		args = []string{} // cobra would read os.Args for nil
	}
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "Error: %s\n", errorMessage(err))
	var ue *usageError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		return exitUsage
	case ctx.Err() != nil:
		return exitInterrupted
	default:
		return exitFailure
	}
}

// errorMessage is err's text for people: the client's "wisp: " prefix is
// redundant in front of "Error: ". When a node could not be reached, the
// client's error (operation, code, attempts) is replaced by the node's URL
// and the cause, after any context the command added: "cannot reach
// http://127.0.0.1:8080: connection refused (is wispd running?)".
func errorMessage(err error) string {
	msg := err.Error()
	var ue *client.UnreachableError
	if errors.As(err, &ue) {
		reach := ue.Error()
		if errors.Is(ue.Err, syscall.ECONNREFUSED) {
			reach += " (is wispd running?)"
		}
		// The client's error is the outermost one in the chain whose text
		// is its own ("wisp: op ...").
		for e := err; e != nil; e = errors.Unwrap(e) {
			if s := e.Error(); strings.HasPrefix(s, "wisp: ") {
				return strings.Replace(msg, s, reach, 1)
			}
		}
		return reach
	}
	return strings.TrimPrefix(msg, "wisp: ")
}
