package pull

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"gridwatch/camera/streamurl"
)

// Client names the RTSP client library a session uses.
type Client string

// The RTSP clients: gortsplib's is the default; vdk's stays available for
// cameras that only it gets along with.
const (
	ClientGortsplib Client = "gortsplib"
	ClientVDK       Client = "vdk"
)

// RTSP is a camera that serves its stream over RTSP, the Source a
// Supervisor uses unless told otherwise. The session runs over TCP.
type RTSP struct {
	// URL is the camera's RTSP URL, credentials included. It is never
	// logged, and errors have it scrubbed of them.
	URL string
	// Client is the client library (default gortsplib).
	Client Client
	// DialTimeout bounds connecting and each RTSP request; ReadTimeout
	// bounds a silent connection.
	DialTimeout, ReadTimeout time.Duration
	Logger                   *slog.Logger
}

// Default timeouts of an RTSP source (and a Supervisor's).
const (
	defaultDialTimeout = 5 * time.Second
	defaultReadTimeout = 10 * time.Second
)

// Open connects to the camera and has it play its H.264 or H.265 video.
// Zero timeouts take the defaults (5 s, 10 s): vdk takes a zero as "none
// left" and fails every request.
func (r RTSP) Open(ctx context.Context) (Session, error) {
	if r.DialTimeout <= 0 {
		r.DialTimeout = defaultDialTimeout
	}
	if r.ReadTimeout <= 0 {
		r.ReadTimeout = defaultReadTimeout
	}
	if r.Client == ClientVDK {
		return r.openVDK(ctx)
	}
	return r.openGortsplib(ctx)
}

// sessionError is an error of one upstream session, with the URL's
// credentials (wherever the URL carries them: see camera/streamurl)
// scrubbed from whatever the libraries put in it: it becomes the camera's
// status reason, shown to users, and goes to the log.
func sessionError(rawURL string, err error) error {
	msg := err.Error()
	if u, perr := url.Parse(rawURL); perr == nil && u.User != nil {
		msg = strings.ReplaceAll(msg, u.User.String()+"@", "")
	}
	_, secret := streamurl.Split(rawURL)
	for _, text := range secret.Texts() {
		msg = scrubWord(msg, text)
	}
	return errors.New(msg)
}

// scrubWord replaces text in msg with "***" wherever it is not the inside of
// a longer word: a letter or digit on the side where text begins or ends
// with one leaves it alone. A username "cam" is scrubbed from "user cam",
// "cam:" or "user=cam_" but leaves "camera" whole.
func scrubWord(msg, text string) string {
	if text == "" {
		return msg
	}
	var b strings.Builder
	for {
		i := strings.Index(msg, text)
		if i < 0 {
			b.WriteString(msg)
			return b.String()
		}
		j := i + len(text)
		if (i > 0 && isAlnum(text[0]) && isAlnum(msg[i-1])) || (j < len(msg) && isAlnum(text[len(text)-1]) && isAlnum(msg[j])) {
			b.WriteString(msg[:i+1]) // inside a word: look further on
			msg = msg[i+1:]
			continue
		}
		b.WriteString(msg[:i])
		b.WriteString("***")
		msg = msg[j:]
	}
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// packetQueue is how many RTP packets may wait between the client's reader
// and our assembler (a second of a 4 Mbit/s stream). When it is full a
// packet is dropped: the assembler sees the gap and waits for a keyframe,
// and the camera's connection is never slowed.
const packetQueue = 512

// rtspSession is an open RTSP session, whichever client runs it. done is
// closed when it has ended by itself (err says why, already scrubbed of
// credentials); close ends it and returns once nothing of it runs any more.
type rtspSession struct {
	format  format.Format
	packets chan *rtp.Packet
	// audio and audioPackets are the audio played with the video, if any.
	audio        format.Format
	audioPackets chan *rtp.Packet
	done         chan struct{}
	err          error
	close        func()
}

func newRTSPSession() *rtspSession {
	return &rtspSession{packets: make(chan *rtp.Packet, packetQueue), done: make(chan struct{}),
		audioPackets: make(chan *rtp.Packet, audioQueue)}
}

// audioQueue is how many audio packets may wait: two seconds of G.711 in
// 20 ms packets.
const audioQueue = 100

// offerAudio queues an audio packet, or drops it when the queue is full.
func (s *rtspSession) offerAudio(pkt *rtp.Packet) {
	select {
	case s.audioPackets <- pkt:
	default:
	}
}

// offer queues a packet for the assembler, or drops it when the queue is
// full (see packetQueue).
func (s *rtspSession) offer(pkt *rtp.Packet) {
	select {
	case s.packets <- pkt:
	default:
	}
}

// The Session methods: see Session.
func (s *rtspSession) Format() format.Format       { return s.format }
func (s *rtspSession) Packets() <-chan *rtp.Packet { return s.packets }
func (s *rtspSession) Done() <-chan struct{}       { return s.done }
func (s *rtspSession) Err() error                  { return s.err }
func (s *rtspSession) Close()                      { s.close() }

// The AudioSession methods: see AudioSession.
func (s *rtspSession) AudioFormat() format.Format       { return s.audio }
func (s *rtspSession) AudioPackets() <-chan *rtp.Packet { return s.audioPackets }

// findVideo picks the video a session plays: the first H.264 or H.265
// medium the camera announces (a camera offering both is read as H.264,
// which every output can play without transcoding).
func findVideo(desc *description.Session) (*description.Media, format.Format, error) {
	var h4 *format.H264
	if m := desc.FindFormat(&h4); m != nil {
		return m, h4, nil
	}
	var h5 *format.H265
	if m := desc.FindFormat(&h5); m != nil {
		return m, h5, nil
	}
	for _, m := range desc.Medias {
		if m.Type == description.MediaTypeVideo && len(m.Formats) > 0 {
			return nil, nil, fmt.Errorf("the camera's video is %s, not H.264 or H.265", m.Formats[0].Codec())
		}
	}
	return nil, nil, errors.New("the camera offers no video")
}

// logger is the session's logger, a discarding one when none was given.
func (r RTSP) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Logger
}
