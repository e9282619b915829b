package plugins

// The test modules in testdata/ are committed, built from the sources beside
// them; tests load the .wasm files and never build them. Rebuild them after
// changing a source, the SDK or the ABI, with the standard toolchain and no
// network:
//
//	go generate ./plugins
//
//go:generate go run ./testdata/gen testdata
//go:generate env GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -buildvcs=false -o testdata/lru.wasm ./testdata/lru
//go:generate env GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -buildvcs=false -o testdata/gohostile.wasm ./testdata/gohostile
//go:generate env GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -buildvcs=false -o testdata/ttlprefix.wasm ./testdata/ttlprefix
