// Command wispd is the Wisp server. `wispd dev` starts a three-node cluster in
// one process on loopback; `wispd start` runs one node of a real cluster.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
