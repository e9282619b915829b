// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3 at
// the version in go.mod, for bench/run.sh. It is etcd's own main: `go
// install` of etcd's commands is refused because of their replace
// directives, so this wrapper module requires the server module instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
