package stream

import (
	"testing"
	"time"
)

// Sound counts as coming while frames come, and for a grace after it is
// announced; a camera that announces sound and sends none gets no audio
// track once the grace is over.
func TestLiveAudio(t *testing.T) {
	a, err := NewAudio(PCMA, 8000, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubOptions{})
	if h.LiveAudio() != nil {
		t.Fatal("sound on a hub without any")
	}
	h.SetAudio(a)
	if h.LiveAudio() != a {
		t.Error("no sound just after it was announced")
	}
	h.audioSet = time.Now().Add(-time.Minute) // the grace is over, nothing came
	if h.LiveAudio() != nil {
		t.Error("sound that never came counts as coming")
	}
	h.Publish(&AccessUnit{Audio: a, Payload: make([]byte, 160), Duration: 160, Received: time.Now()})
	if h.LiveAudio() != a {
		t.Error("sound that comes does not count")
	}
	h.lastAudio = time.Now().Add(-time.Minute) // and then stopped
	if h.LiveAudio() != nil {
		t.Error("sound that stopped a minute ago counts as coming")
	}
}

// A hub fed footage recorded long ago, at its recorded times and faster
// than real time (a device's recording fetched), has sound while its frames
// do, whatever the clock says; and none once the pictures go on without it.
func TestLiveAudioOnTheFramesTimes(t *testing.T) {
	a, err := NewAudio(PCMA, 8000, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := NewHub(HubOptions{})
	h.SetAudio(a)
	h.audioSet = time.Now().Add(-time.Minute) // announced long ago
	recorded := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	params := &Params{}
	at := func(i int) time.Time { return recorded.Add(time.Duration(i) * 40 * time.Millisecond) }
	for i := 0; i < 100; i++ {
		h.Publish(&AccessUnit{DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600, NALUs: [][]byte{{0x41}}, Key: i%25 == 0, Params: params, Received: at(i)})
		h.Publish(&AccessUnit{Audio: a, Payload: make([]byte, 320), Duration: 320, Received: at(i)})
	}
	if h.LiveAudio() != a {
		t.Fatal("the sound of footage recorded months ago, fed with its pictures, does not count as coming")
	}
	for i := 100; i < 200; i++ { // 4 s of pictures, no sound
		h.Publish(&AccessUnit{DTS: int64(i) * 3600, PTS: int64(i) * 3600, Duration: 3600, NALUs: [][]byte{{0x41}}, Key: i%25 == 0, Params: params, Received: at(i)})
	}
	if h.LiveAudio() != nil {
		t.Error("sound that stopped 4 s of pictures ago counts as coming")
	}
}
