package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ErrBinariesNotFound is returned (wrapped) when initdb and postgres cannot
// be found.
var ErrBinariesNotFound = errors.New("PostgreSQL server binaries not found; install them with: apt-get install -y postgresql")

// debianRoot is where Debian and Ubuntu install one directory per major
// version; pg_config and PATH usually point only at client tools there.
const debianRoot = "/usr/lib/postgresql"

// FindBinDir returns the directory holding initdb and postgres: the
// highest version under /usr/lib/postgresql/*/bin, else the output of
// `pg_config --bindir`, else the directory of an initdb in PATH.
func FindBinDir() (string, error) { return findBinDir("") }

// findBinDir is FindBinDir, trying first the Debian directory of the major
// version that created an existing data directory: a machine with several
// versions installed must not start a 15 data dir with 16's binaries.
func findBinDir(dataVersion string) (string, error) {
	var candidates []string
	if dataVersion != "" && !strings.ContainsAny(dataVersion, "/.") {
		candidates = append(candidates, filepath.Join(debianRoot, dataVersion, "bin"))
	}
	if entries, err := os.ReadDir(debianRoot); err == nil {
		type versioned struct {
			dir string
			ver float64
		}
		var vs []versioned
		for _, e := range entries {
			v, err := strconv.ParseFloat(e.Name(), 64)
			if err != nil {
				continue
			}
			vs = append(vs, versioned{filepath.Join(debianRoot, e.Name(), "bin"), v})
		}
		sort.Slice(vs, func(i, j int) bool { return vs[i].ver > vs[j].ver })
		for _, v := range vs {
			candidates = append(candidates, v.dir)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "pg_config", "--bindir").Output(); err == nil {
		candidates = append(candidates, strings.TrimSpace(string(out)))
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if checkBinDir(dir) == nil {
			return dir, nil
		}
	}
	return "", ErrBinariesNotFound
}

func checkBinDir(dir string) error {
	for _, name := range []string{"initdb", "postgres"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%w (no executable %s)", ErrBinariesNotFound, p)
		}
	}
	return nil
}
