// Command tenantry runs Tenantry (tenantry serve) and administers it over
// the admin API (tenantry tenant create|list|get|..., cluster, audit).
//
//	tenantry serve                      # embedded PostgreSQL under ./.tenantry
//	tenantry tenant create acme --model schema --domain acme.example.com
//	tenantry tenant list
//	curl -H 'Host: acme.localhost' localhost:8080/api/v1/tenant
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}, os.Getenv))
}
