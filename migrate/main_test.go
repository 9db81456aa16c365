package migrate_test

import (
	"os"
	"testing"

	"github.com/tenantry/tenantry/tenantrytest"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	if os.Getenv(benchChildEnv) != "" {
		os.Exit(benchChild())
	}
	tenantrytest.Main(m)
}
