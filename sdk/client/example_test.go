package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/wisp-db/wisp/sdk/client"
)

// The examples need a running Wisp cluster, so they are compiled but not run
// by go test; TestExampleRuns runs Example against a test cluster.

// A first write and read. This is README.md's Go example (section "From
// Go, with sdk/client"), one indentation level less; a test in cmd/wisp
// checks that the two stay the same.
func Example() {
	ctx := context.Background()
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	version, err := c.Put(ctx, "greeting", []byte("hello"), client.WithTTL(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	item, found, err := c.Get(ctx, "greeting")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(found, string(item.Value), item.Version == version) // true hello true
}

func ExampleNew() {
	c, err := client.New("http://127.0.0.1:8080",
		client.WithProtocol(client.ProtocolGRPC),
		client.WithMaxAttempts(3),
		client.WithBackoff(50*time.Millisecond, 2*time.Second),
		client.WithTimeout(5*time.Second),
	)
	if err != nil {
		log.Fatal(err)
	}
	st, err := c.Status(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(st.GetNodes()), "nodes")
}

func ExampleWithRouting() {
	// Only the load balancer's address is reachable from here, not the
	// nodes' own URLs: send every call to it, and let the nodes forward.
	c, err := client.New("https://wisp.example.com", client.WithRouting(false))
	if err != nil {
		log.Fatal(err)
	}
	if _, err := c.Put(context.Background(), "greeting", []byte("hello")); err != nil {
		log.Fatal(err)
	}
}

func ExampleClient_Get() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	item, found, err := c.Get(context.Background(), "greeting", client.WithConsistency(client.Stale))
	switch {
	case err != nil:
		log.Fatal(err)
	case !found:
		fmt.Println("no greeting")
	default:
		fmt.Printf("%s (version %d)\n", item.Value, item.Version)
	}
}

func ExampleClient_Put() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	version, err := c.Put(context.Background(), "session/42", []byte("alice"), client.WithTTL(30*time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("version", version)
}

// A compare-and-swap loop: read, change, write back only if nobody wrote in
// between, and start over if somebody did.
func ExampleWithIfVersion() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	const key, maxTries = "doubling", 10
	for range maxTries {
		item, found, err := c.Get(ctx, key)
		if err != nil {
			log.Fatal(err)
		}
		n := int64(1)
		opt := client.WithIfAbsent()
		if found {
			if n, err = strconv.ParseInt(string(item.Value), 10, 64); err != nil {
				log.Fatal(err)
			}
			opt = client.WithIfVersion(item.Version)
		}
		_, err = c.Put(ctx, key, []byte(strconv.FormatInt(2*n, 10)), opt)
		if errors.Is(err, client.ErrPreconditionFailed) {
			continue // lost the race; read again
		}
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	log.Fatal("too much contention")
}

func ExamplePreconditionError() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	_, err = c.Put(context.Background(), "config", []byte("v2"), client.WithIfVersion(7))
	var pe *client.PreconditionError
	if errors.As(err, &pe) {
		fmt.Printf("%q is at version %d, not 7\n", pe.Key, pe.CurrentVersion)
		fmt.Println(connect.CodeOf(err)) // failed_precondition
	}
}

func ExampleClient_ScanAll() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	for item, err := range c.ScanAll(context.Background(), client.ScanOptions{Prefix: "user/", Limit: 500}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s=%s\n", item.Key, item.Value)
	}
}

func ExampleClient_Scan() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	// Page by hand, say to hand a token to a web client.
	opts := client.ScanOptions{Prefix: "user/", Limit: 20, KeysOnly: true}
	page, err := c.Scan(context.Background(), opts)
	if err != nil {
		log.Fatal(err)
	}
	for _, item := range page.Items {
		fmt.Println(item.Key)
	}
	if len(page.NextPageToken) > 0 {
		opts.PageToken = page.NextPageToken
		// ... call c.Scan(ctx, opts) for the next page.
	}
}

func ExampleClient_Batch() {
	c, err := client.New("http://127.0.0.1:8080")
	if err != nil {
		log.Fatal(err)
	}
	// Move a job from the queue to the running set, atomically, only if
	// it is still queued at version 12.
	results, err := c.Batch(context.Background(),
		client.DeleteOp("queue/job-7", client.WithIfVersion(12)),
		client.PutOp("running/job-7", []byte("worker-3"), client.WithTTL(time.Minute)),
		client.IncrementOp("stats/started", 1),
	)
	var pe *client.PreconditionError
	if errors.As(err, &pe) {
		fmt.Printf("op %d failed: %q is at version %d\n", pe.OpIndex, pe.Key, pe.CurrentVersion)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("applied at version", results[0].Version, "; started:", results[2].Value)
}
