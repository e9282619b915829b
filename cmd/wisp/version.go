package main

import (
	"github.com/spf13/cobra"

	"github.com/wisp-db/wisp/buildinfo"
)

func newVersionCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this wisp binary",
		Long: `Print the version of this wisp binary: the module version ("(devel)" when
built from a checkout), the VCS revision it was built from and the Go
version, such as "wisp v0.3.0 (0123456789ab, modified) go1.26.8". It makes
no network call; the nodes report theirs with wispd version and the
wisp_build_info metric.

--output json prints the fields: version, revision, time, modified and
go_version.`,
		Example: `  wisp version
  wisp version --output json`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := buildinfo.Get()
			out := cmd.OutOrStdout()
			if g.json() {
				return writeJSON(out, info)
			}
			return writef(out, "wisp %s\n", info)
		},
	}
}
