package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	privateOnce sync.Once
	privateAddr string
	privateErr  error
)

// privateRedis starts, once per process, a redis-server on a free loopback
// port in a temporary directory, without persistence, and returns its
// address. It lives exactly as long as the process: it is started from an
// OS thread that is never given back, with a parent-death signal, so it is
// killed however the test binary ends (a panic, a timeout, SIGKILL).
func privateRedis() (string, error) {
	privateOnce.Do(func() { privateAddr, privateErr = startPrivateRedis() })
	return privateAddr, privateErr
}

func startPrivateRedis() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("redis-server is required for tests (or set PLUGBOARD_TEST_REDIS_ADDR): %w", err)
	}
	dir, err := os.MkdirTemp("", "plugboard-test-redis-")
	if err != nil {
		return "", err
	}
	type started struct {
		addr string
		err  error
	}
	done := make(chan started, 1)
	go func() {
		// Pdeathsig follows the thread that started the child: this one
		// stays locked and parked for the life of the process.
		runtime.LockOSThread()
		for attempt := 0; ; attempt++ {
			addr, cmd, err := launchRedis(bin, dir)
			if err == nil {
				done <- started{addr: addr}
				_ = cmd.Wait()
				os.RemoveAll(dir)
				select {} // keep the thread: a new one would not carry the signal
			}
			if attempt == 4 {
				done <- started{err: err}
				return
			}
		}
	}()
	s := <-done
	return s.addr, s.err
}

// launchRedis starts redis-server on a port that was free a moment ago and
// waits until it answers.
func launchRedis(bin, dir string) (string, *exec.Cmd, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", dir, "--databases", "16", "--loglevel", "warning")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting redis-server: %w", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	for range 250 {
		if c.Ping(context.Background()).Err() == nil {
			return addr, cmd, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return "", nil, errors.New("redis-server on " + addr + " did not answer")
}
