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
