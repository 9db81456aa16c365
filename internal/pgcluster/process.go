package pgcluster

import (
	"os/exec"
	"runtime"
	"syscall"
)

// startLocked starts cmd with Pdeathsig set and returns a channel that
// receives cmd.Wait's result when the child exits.
//
// The kernel sends the parent-death signal when the *thread* that forked the
// child exits, not the process (go.dev/issue/27505), and the Go runtime
// retires a thread when a goroutine locked to it returns. So the child is
// forked from a goroutine locked to its thread that stays alive, waiting, for
// the child's whole life: no other goroutine can run on (and retire) that
// thread, and it only goes away after the child is gone or with the whole
// process, which is exactly when the signal should fire.
func startLocked(cmd *exec.Cmd, deathSig syscall.Signal) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSig
	started := make(chan error, 1)
	exited := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Never unlocked on purpose: see above.
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		exited <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return exited, nil
}
