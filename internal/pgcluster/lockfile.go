package pgcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// removeStaleLocks removes postmaster.pid and socket lock files left by a
// postgres that is gone. PostgreSQL removes a lock whose pid is dead itself,
// but not one whose pid was since reused by an unrelated process, which is
// common in containers where pids restart low; then it refuses to start.
// A lock held by a live postgres on this data directory is an error.
func removeStaleLocks(dir, pgdata string) error {
	locks, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*.lock"))
	locks = append([]string{filepath.Join(pgdata, "postmaster.pid")}, locks...)
	for _, lock := range locks {
		b, err := os.ReadFile(lock)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
		if pid > 0 && servesDataDir(pid, pgdata) {
			return fmt.Errorf("pgcluster: %w (pid %d, %s); stop it or use another Config.Dir", ErrAlreadyRunning, pid, pgdata)
		}
		if err := os.Remove(lock); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pgcluster: removing stale %s: %w", lock, err)
		}
	}
	return nil
}

// servesDataDir reports whether pid is alive and may be a postgres running
// in pgdata (postgres chdirs into its data directory). When that cannot be
// read (another user's process), any live process named postgres counts.
func servesDataDir(pid int, pgdata string) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	if cwd, err := os.Readlink(filepath.Join(proc, "cwd")); err == nil {
		want, err := filepath.EvalSymlinks(pgdata)
		if err != nil {
			want = pgdata
		}
		return cwd == want
	}
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil {
		return true // alive and unreadable: let postgres decide
	}
	return strings.Contains(string(cmdline), "postgres") || strings.Contains(string(cmdline), "postmaster")
}
