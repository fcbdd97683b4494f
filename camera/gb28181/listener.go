package gb28181

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"time"
)

// patientListener keeps accepting SIP over TCP through a shortage of file
// descriptors (EMFILE, ENFILE) or of kernel memory for a socket: sipgo's
// accept loop returns on any error, and with it Run would stop the whole
// server, UDP too, for good. It waits, as net/http does, 5 ms doubling up
// to 1 s, and tries again; any other error (a closed listener's) it
// returns.
type patientListener struct {
	net.Listener
	log       *slog.Logger
	closeOnce sync.Once
	closed    chan struct{}
}

func newPatientListener(ln net.Listener, log *slog.Logger) *patientListener {
	return &patientListener{Listener: ln, log: log, closed: make(chan struct{})}
}

// Accept implements net.Listener.
func (l *patientListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := l.Listener.Accept()
		if err == nil || !shortOfResources(err) {
			return c, err
		}
		backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
		l.log.Warn("gb28181: accept failed; retrying", "err", err, "in", backoff)
		select {
		case <-time.After(backoff):
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
}

// Close implements net.Listener; an Accept waiting to try again returns.
func (l *patientListener) Close() error {
	l.closeOnce.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// shortOfResources reports an accept that failed for want of a descriptor
// or of memory: it passes when connections close.
func shortOfResources(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}
