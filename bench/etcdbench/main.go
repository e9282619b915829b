// Command benchmark is etcd's benchmark tool (tools/benchmark in
// go.etcd.io/etcd/v3 at the version in go.mod), for bench/run.sh. `go
// install` of it is refused because etcd's root go.mod has replace
// directives, so this wrapper module requires it and calls its command.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/v3/tools/benchmark/cmd"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
