package rtspserve

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"gridwatch"
	"gridwatch/camera/stream"
)

// FuzzParsePath checks that every accepted path is the one canonical path
// of its camera and stream, and that nothing panics.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"/cameras/1", "/cameras/42/sub", "/cameras/0", "/cameras/01", "/cameras/-1",
		"/cameras/1/sub/sub", "/cameras//sub", "/cameras/9223372036854775808", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		id, name, ok := parsePath(path)
		if !ok {
			return
		}
		if id <= 0 {
			t.Fatalf("parsePath(%q) accepted id %d", path, id)
		}
		canon := "/cameras/" + strconv.FormatInt(id, 10)
		switch name {
		case StreamMain:
		case StreamSub:
			canon += "/sub"
		default:
			t.Fatalf("parsePath(%q) gave stream %q", path, name)
		}
		if canon != path {
			t.Fatalf("parsePath(%q) accepted a non-canonical path for %s", path, canon)
		}
	})
}

// FuzzRequestToken feeds arbitrary queries and Authorization headers to
// the token extraction.
func FuzzRequestToken(f *testing.F) {
	f.Add("token=abc", "Basic dTpw")
	f.Add("a=%zz&token=x", "Basic !!!")
	f.Add("", "Digest username=\"u\"")
	f.Fuzz(func(t *testing.T, query, auth string) {
		req := &base.Request{Header: base.Header{"Authorization": base.HeaderValue{auth}}}
		_ = requestToken(req, query)
		_ = redact(query)
	})
}

// FuzzConn feeds arbitrary bytes to a connection's request loop, as a
// client would send them, with an Access that refuses every token: the
// loop must end when the client does, answer only with RTSP responses,
// never panic and never acquire a stream.
func FuzzConn(f *testing.F) {
	f.Add([]byte("OPTIONS rtsp://h/cameras/1 RTSP/1.0\r\nCSeq: 1\r\n\r\n"))
	f.Add([]byte("DESCRIBE rtsp://h/cameras/1?token=x RTSP/1.0\r\nCSeq: 2\r\n\r\n"))
	f.Add([]byte("SETUP rtsp://h/cameras/1/trackID=0 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n" +
		"PLAY rtsp://h/cameras/1/ RTSP/1.0\r\nCSeq: 4\r\nSession: 12345678\r\n\r\nTEARDOWN rtsp://h/cameras/1 RTSP/1.0\r\nCSeq: 5\r\n\r\n"))
	f.Add([]byte("SETUP rtsp://h/cameras/1?token=x/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"))
	f.Add([]byte("$\x01\x00\x04abcdGET_PARAMETER rtsp://h/ RTSP/1.0\r\nCSeq: 6\r\nContent-Length: 3\r\n\r\nxyz"))
	f.Add([]byte("$\x00\xff\xff"))
	f.Add([]byte("GARBAGE\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := &Server{
			cfg: Config{
				Access: func(context.Context, string, int64) error {
					return gridwatch.Errorf(gridwatch.EUnauthenticated, "no")
				},
				Acquire: func(context.Context, int64, string) (*stream.Hub, func(), error) {
					t.Error("Acquire called for a refused client")
					return nil, nil, errors.New("no")
				},
				ReadyTimeout: time.Second,
				Recheck:      time.Minute,
			},
			log:          slog.New(slog.DiscardHandler),
			ctx:          ctx,
			writeTimeout: time.Second,
			leases:       map[*lease]struct{}{},
			caches:       map[*stream.Hub]*packetCache{},
			open:         map[*conn]struct{}{},
		}
		client, server := net.Pipe()
		c := &conn{s: s, nc: server, remote: "pipe", br: bufio.NewReaderSize(server, readBufferSize)}
		c.restDone = sync.NewCond(&c.wmu)
		s.open[c] = struct{}{}
		s.conns.Add(1)
		go c.serve()
		out := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(client); out <- b }()
		_, _ = client.Write(in) // the loop may have closed the connection first: a bad request
		done := make(chan struct{})
		go func() { s.conns.Wait(); close(done) }()
		// net.Pipe has no half close: the client hangs up after writing,
		// as one that sent its requests and left.
		_ = client.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("the connection's loop did not end after the client left")
		}
		for b := <-out; len(b) > 0; {
			if !bytes.HasPrefix(b, []byte("RTSP/1.0 ")) {
				t.Fatalf("answered with something other than an RTSP response: %q", b[:min(len(b), 40)])
			}
			i := bytes.Index(b, []byte("\r\n\r\n"))
			if i < 0 {
				t.Fatalf("a truncated response: %q", b)
			}
			b = b[i+4:] // no response here has a body: every request was refused
		}
		if len(s.leases) != 0 {
			t.Errorf("%d leases left", len(s.leases))
		}
	})
}
