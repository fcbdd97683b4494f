package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"
)

// openGortsplib opens the session with gortsplib's client.
func (r RTSP) openGortsplib(ctx context.Context) (Session, error) {
	u, err := base.ParseURL(r.URL)
	if err != nil {
		return nil, errors.New("the camera URL cannot be parsed")
	}
	tcp := gortsplib.TransportTCP
	src := newRTSPSession()
	c := &gortsplib.Client{
		Scheme: u.Scheme, Host: u.Host, Transport: &tcp,
		ReadTimeout: r.ReadTimeout, WriteTimeout: r.DialTimeout,
		UserAgent:   "gridwatch",
		DialContext: (&net.Dialer{Timeout: r.DialTimeout}).DialContext,
	}
	if err := c.Start2(); err != nil {
		return nil, err
	}
	// Describe, Setup and Play block on the network; ctx ends them by
	// closing the client.
	stop := context.AfterFunc(ctx, c.Close)
	fail := func(err error) (Session, error) {
		stop()
		c.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, sessionError(r.URL, err)
	}
	// Each request is bounded by DialTimeout: gortsplib's own bound on an
	// answer is ReadTimeout, the one for a silent playing session, and a
	// camera that takes that long to answer is better told apart.
	request := func(method string, do func() error) error {
		if r.DialTimeout <= 0 {
			return requestError(method, do())
		}
		timer := time.AfterFunc(r.DialTimeout, c.Close)
		err := do()
		if !timer.Stop() && ctx.Err() == nil {
			return fmt.Errorf("the camera did not answer %s within %s", method, r.DialTimeout)
		}
		return requestError(method, err)
	}
	var desc *description.Session
	err = request("DESCRIBE", func() (err error) {
		desc, _, err = c.Describe(u)
		return err
	})
	if err != nil {
		return fail(err)
	}
	medi, f, err := findVideo(desc)
	if err != nil {
		return fail(err)
	}
	if err := request("SETUP", func() error {
		_, err := c.Setup(desc.BaseURL, medi, 0, 0)
		return err
	}); err != nil {
		return fail(err)
	}
	src.format = f
	c.OnPacketRTP(medi, f, func(pkt *rtp.Packet) {
		// Over TCP (the only transport used here) gortsplib reads every
		// interleaved frame into a buffer of its own and decodes a new
		// rtp.Packet from it, so the packet is ours to keep, uncopied: a
		// copy a packet was a fifth of a relay's garbage.
		// TestGortsplibPacketsAreOurs holds the library to it.
		src.offer(pkt)
	})
	// The audio, when the camera has some we carry, plays in the same
	// session; a camera that refuses its SETUP is played without sound.
	if am, af, why := findAudio(desc); am != nil {
		if err := request("SETUP", func() error {
			_, err := c.Setup(desc.BaseURL, am, 0, 0)
			return err
		}); err != nil {
			r.logger().Info("camera audio not played", "err", sessionError(r.URL, err))
		} else {
			src.audio = af
			c.OnPacketRTP(am, af, func(pkt *rtp.Packet) {
				src.offerAudio(pkt) // ours to keep, as the video's
			})
		}
	} else if why != "" {
		r.logger().Info("camera audio not played", "reason", why)
	}
	if err := request("PLAY", func() error {
		_, err := c.Play(nil)
		return err
	}); err != nil {
		return fail(err)
	}
	stop()
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		if err := c.Wait(); err != nil {
			src.err = sessionError(r.URL, err)
		}
		close(src.done)
	}()
	src.close = func() {
		c.Close()
		<-waited
	}
	return src, nil
}

// requestError says which request failed, and a connection the camera
// closed in plain words (gortsplib skips bytes that are not RTSP, so a
// camera that answers garbage and hangs up ends here too).
func requestError(method string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%s: the camera closed the connection without an answer", method)
	}
	return fmt.Errorf("%s: %w", method, err)
}
