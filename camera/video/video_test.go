package video

import (
	"testing"

	"gridwatch/camera"
	"gridwatch/camera/pull"
)

// TestStatusesAgree: a stream's status is written to the registry as its
// text, so the two packages' names for it must be the same words.
func TestStatusesAgree(t *testing.T) {
	for _, tc := range []struct {
		pull pull.Status
		reg  string
	}{
		{pull.StatusConnecting, camera.StatusConnecting},
		{pull.StatusOnline, camera.StatusOnline},
		{pull.StatusOffline, camera.StatusOffline},
	} {
		if string(tc.pull) != tc.reg {
			t.Errorf("pull status %q is %q in the registry", tc.pull, tc.reg)
		}
	}
}
