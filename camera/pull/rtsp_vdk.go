package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/deepch/vdk/format/rtspv2"
	"github.com/pion/rtp"
)

// handshakeRequests is how many requests vdk's handshake makes.
const handshakeRequests = 4

// openVDK opens the session with vdk's rtspv2 client (see the package doc
// for what is not used of it, and its limits).
func (r RTSP) openVDK(ctx context.Context) (Session, error) {
	type dialed struct {
		c   *rtspv2.RTSPClient
		err error
	}
	// vdk's Dial takes no context; run it aside so ctx can cut it short.
	dch := make(chan dialed, 1)
	go func() {
		c, err := rtspv2.Dial(rtspv2.RTSPClientOptions{
			URL:              r.URL,
			DialTimeout:      r.DialTimeout,
			ReadWriteTimeout: r.ReadTimeout,
			DisableAudio:     true,
			OutgoingProxy:    true,
		})
		dch <- dialed{c, err}
	}()
	// vdk bounds each request by ReadWriteTimeout, the streaming read
	// timeout: the handshake (OPTIONS, DESCRIBE, SETUP, PLAY) is bounded
	// here, by DialTimeout a request, as gortsplib's is.
	limit := handshakeRequests * r.DialTimeout
	handshake := time.NewTimer(limit)
	defer handshake.Stop()
	abandon := func() {
		// The dial ends within its own timeouts; close what it opens.
		go func() {
			if d := <-dch; d.c != nil {
				d.c.Close()
				drainUntilStop(d.c)
			}
		}()
	}
	var c *rtspv2.RTSPClient
	select {
	case d := <-dch:
		if errors.Is(d.err, io.EOF) || errors.Is(d.err, io.ErrUnexpectedEOF) {
			return nil, sessionError(r.URL, errors.New("the camera closed the connection during the RTSP handshake"))
		}
		if d.err != nil {
			return nil, sessionError(r.URL, d.err)
		}
		c = d.c
	case <-ctx.Done():
		abandon()
		return nil, ctx.Err()
	case <-handshake.C:
		abandon()
		return nil, fmt.Errorf("the camera did not finish the RTSP handshake (OPTIONS, DESCRIBE, SETUP, PLAY) within %v", limit)
	}
	f, err := findVideoSDP(c.SDPRaw)
	if err != nil {
		c.Close()
		drainUntilStop(c)
		return nil, err
	}
	src := newRTSPSession()
	src.format = f
	// vdk's own packets are not used, but its queue must never fill: it
	// drops the camera when it does. Its Signals channel must never fill
	// either: its reader blocks on it.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-c.OutgoingPacketQueue:
			case <-stop:
				return
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case sig := <-c.Signals:
				if sig == rtspv2.SignalStreamRTPStop {
					close(src.done)
					return
				}
			case raw := <-c.OutgoingProxyQueue:
				b := *raw
				// 4 bytes of RTSP interleaving, then RTP; odd channels carry RTCP.
				if len(b) < 4+12 || b[1]%2 == 1 {
					continue
				}
				var pkt rtp.Packet
				if pkt.Unmarshal(b[4:]) != nil {
					continue
				}
				src.offer(&pkt)
			case <-stop:
				return
			}
		}
	}()
	src.close = func() {
		c.Close()
		// vdk's reader sends its stop signal on the way out; once it has,
		// nothing of this session runs any more.
		select {
		case <-src.done:
		case <-time.After(r.ReadTimeout + time.Second):
			if r.Logger != nil {
				r.Logger.Warn("camera reader did not stop")
			}
		}
		close(stop)
		wg.Wait()
	}
	return src, nil
}

// drainUntilStop empties a vdk client's channels until its reader has
// stopped, so it never blocks on them.
func drainUntilStop(c *rtspv2.RTSPClient) {
	timeout := time.After(time.Minute)
	for {
		select {
		case sig := <-c.Signals:
			if sig == rtspv2.SignalStreamRTPStop {
				return
			}
		case <-c.OutgoingPacketQueue:
		case <-c.OutgoingProxyQueue:
		case <-timeout:
			return
		}
	}
}

// findVideoSDP reads the video format from the SDP vdk received.
func findVideoSDP(raw []byte) (format.Format, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(raw); err != nil {
		return nil, fmt.Errorf("SDP: %w", err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return nil, fmt.Errorf("SDP: %w", err)
	}
	_, f, err := findVideo(&desc)
	return f, err
}
