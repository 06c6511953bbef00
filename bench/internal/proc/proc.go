// Package proc holds what the benchmarks do with the processes they run:
// find a free loopback port for one, and stop one (and its children) by
// its process group.
package proc

import (
	"net"
	"os/exec"
	"syscall"
	"time"
)

// FreePort returns a loopback port that was free a moment ago.
func FreePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Stop ends a process started in its own process group: SIGTERM, then
// SIGKILL after ten seconds, and waits for it. A process not started, or
// already waited for, is left alone.
func Stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil || cmd.ProcessState != nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}
