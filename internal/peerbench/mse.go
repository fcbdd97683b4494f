package peerbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"sync/atomic"

	"github.com/coder/websocket"
)

// MSE is how a server's browsers watch over Media Source Extensions: a
// WebSocket that carries an fMP4 init segment and then fragments
// (moof+mdat). URL is camera n's WebSocket, Header goes with the upgrade,
// Hello (if any) is the first text message a browser sends.
type MSE struct {
	URL    func(n int) string
	Header http.Header
	Hello  []byte
}

// mseViewer is one MSE viewer: it counts the fragments it receives, however
// the server packs them into messages.
type mseViewer struct {
	c        *websocket.Conn
	ctx      context.Context
	cancel   context.CancelFunc
	pictures atomic.Int64
	firstKey chan struct{}
	buf      bytes.Buffer
}

// DialMSE opens an MSE WebSocket on camera n of m and says hello.
func DialMSE(ctx context.Context, m *MSE, n int) (Viewer, error) {
	c, _, err := websocket.Dial(ctx, m.URL(n), &websocket.DialOptions{HTTPHeader: m.Header})
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(16 << 20) // a keyframe's fragment is larger than the 32 KiB default
	if len(m.Hello) > 0 {
		if err := c.Write(ctx, websocket.MessageText, m.Hello); err != nil {
			c.CloseNow()
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(context.Background())
	return &mseViewer{c: c, ctx: rctx, cancel: cancel, firstKey: make(chan struct{})}, nil
}

// Run reads messages until the connection ends, counting moof boxes; the
// first one after the init segment starts on a keyframe with both servers
// (a browser could not begin anywhere else).
func (v *mseViewer) Run() error {
	for {
		typ, r, err := v.c.Reader(v.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageBinary {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return err
			}
			continue
		}
		v.buf.Reset()
		if _, err := v.buf.ReadFrom(r); err != nil {
			return err
		}
		n, err := CountBoxes(v.buf.Bytes(), "moof")
		if err != nil {
			return err
		}
		if n > 0 && v.pictures.Add(int64(n)) == int64(n) {
			close(v.firstKey)
		}
	}
}

// CountBoxes counts the top-level MP4 boxes of type typ in b, which must be
// whole boxes.
func CountBoxes(b []byte, typ string) (int, error) {
	n := 0
	for len(b) > 0 {
		if len(b) < 8 {
			return n, errors.New("mse: a truncated box header")
		}
		size := uint64(binary.BigEndian.Uint32(b))
		hdr := uint64(8)
		if size == 1 { // 64-bit size
			if len(b) < 16 {
				return n, errors.New("mse: a truncated box header")
			}
			size, hdr = binary.BigEndian.Uint64(b[8:]), 16
		}
		if size < hdr || size > uint64(len(b)) {
			return n, errors.New("mse: a box runs past its message")
		}
		if string(b[4:8]) == typ {
			n++
		}
		b = b[size:]
	}
	return n, nil
}

func (v *mseViewer) Count() int64                   { return v.pictures.Load() }
func (v *mseViewer) FirstKeyframe() <-chan struct{} { return v.firstKey }
func (v *mseViewer) Close() error {
	v.cancel()
	return v.c.CloseNow()
}
