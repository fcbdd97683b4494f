// Package rtsprun is how a camera package's gortsplib server (camsim's
// simulated cameras; rtspserve has a server of its own) runs once started: until their context ends or the server fails, then an
// ordered close in which nothing of the server outlives the call.
package rtsprun

import (
	"context"

	"github.com/bluenviron/gortsplib/v4"
)

// Until runs the started srv until ctx ends or srv stops by itself. Then it
// calls shutdown, which ends what must not run once connections close (the
// server's own writers, handlers still waiting), closes srv and waits for
// every goroutine of it. It returns nil when ctx ended, or the error the
// server stopped with by itself.
func Until(ctx context.Context, srv *gortsplib.Server, shutdown func()) error {
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Wait() }()

	var stopped error
	select {
	case <-ctx.Done():
	case stopped = <-srvErr:
		// Wait has returned already; the close below must not block on it.
		srvErr <- stopped
	}
	shutdown()
	srv.Close()
	<-srvErr
	return stopped
}
