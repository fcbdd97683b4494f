package gbsim

import (
	"gridwatch/camera/gb28181/ps"
)

// muxer makes the PS packs of a stream: one pack an access unit, one a
// 20 ms audio frame.
type muxer struct {
	m     ps.Muxer
	annex []byte
}

func newMuxer(h265, audio bool) *muxer {
	m := &muxer{m: ps.Muxer{Video: ps.H264}}
	if h265 {
		m.m.Video = ps.H265
	}
	if audio {
		m.m.Audio = ps.G711A
	}
	return m
}

// video appends the pack of an access unit (NAL units without start
// codes) to dst.
func (m *muxer) video(dst []byte, au [][]byte, pts uint64, key bool) []byte {
	m.annex = m.annex[:0]
	for _, n := range au {
		m.annex = append(m.annex, 0, 0, 0, 1)
		m.annex = append(m.annex, n...)
	}
	return m.m.WriteVideo(dst, m.annex, int64(pts), int64(pts), key)
}

// audio appends the pack of a G.711 frame to dst.
func (m *muxer) audio(dst, frame []byte, pts uint64) []byte {
	return m.m.WriteAudio(dst, frame, int64(pts))
}

// packetize cuts a pack into RTP payloads of at most size bytes.
func packetize(pack []byte, size int, fn func(piece []byte, last bool)) {
	ps.Packetize(pack, size, fn)
}
