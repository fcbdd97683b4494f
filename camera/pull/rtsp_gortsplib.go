package pull

import (
	"context"
	"errors"
	"net"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
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
	desc, _, err := c.Describe(u)
	if err != nil {
		return fail(err)
	}
	medi, f, err := findVideo(desc)
	if err != nil {
		return fail(err)
	}
	if _, err := c.Setup(desc.BaseURL, medi, 0, 0); err != nil {
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
		if _, err := c.Setup(desc.BaseURL, am, 0, 0); err != nil {
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
	if _, err := c.Play(nil); err != nil {
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
