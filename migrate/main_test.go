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
	tenantrytest.Main(m)
}
