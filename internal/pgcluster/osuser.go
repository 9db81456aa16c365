package pgcluster

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUser is the OS user initdb and postgres run as when the caller is
// root: PostgreSQL refuses to run as root.
const serverUser = "postgres"

// runAs is the identity the server processes run under: nil credential
// means "as the caller".
type runAs struct {
	cred *syscall.Credential
	name string
}

func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{}, nil
	}
	u, err := user.Lookup(serverUser)
	if err != nil {
		return runAs{}, fmt.Errorf("pgcluster: running as root needs an OS user %q to run PostgreSQL as (apt-get install -y postgresql creates it): %w", serverUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return runAs{}, fmt.Errorf("pgcluster: OS user %q has a non-numeric uid/gid %q/%q", serverUser, u.Uid, u.Gid)
	}
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
		name: serverUser,
	}, nil
}

// attr returns the SysProcAttr for a server process: its own process group
// (a terminal's Ctrl-C reaches the caller only, which then stops the server
// in order) and the run-as credential.
func (r runAs) attr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: r.cred, Setpgid: true}
}

// prepareDir makes dir usable by the server user: owned by it, and every
// parent traversable by it. It changes only dir and what is below it; a
// parent that the server user cannot traverse is reported, not chmod-ed.
func (r runAs) prepareDir(dir string) error {
	if r.cred == nil {
		return nil
	}
	uid, gid := int(r.cred.Uid), int(r.cred.Gid)
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		ok := mode&0o001 != 0 ||
			(st != nil && int(st.Uid) == uid && mode&0o100 != 0) ||
			(st != nil && int(st.Gid) == gid && mode&0o010 != 0)
		if !ok {
			return fmt.Errorf("pgcluster: directory %s is not traversable by OS user %q, which runs PostgreSQL; put Config.Dir elsewhere (for example under /tmp or /var/lib) or run: chmod o+x %s", p, r.name, p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	// Dir and everything in it (a data dir copied or created by root, the
	// log file) must belong to the server user; chown only what differs.
	// The walk goes through an os.Root: the server user owns what is below
	// dir, and a directory it swapped for a symlink mid-walk must not lead
	// this root process to chown a file outside dir.
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	defer root.Close()
	return fs.WalkDir(root.FS(), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("pgcluster: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
			if name != "." && d.IsDir() && path.Dir(name) == "." {
				// The data dir is already the server's: nothing below needs a change.
				return fs.SkipDir
			}
			return nil
		}
		if err := root.Lchown(name, uid, gid); err != nil {
			return fmt.Errorf("pgcluster: giving %s to OS user %q: %w", filepath.Join(dir, name), r.name, err)
		}
		return nil
	})
}
