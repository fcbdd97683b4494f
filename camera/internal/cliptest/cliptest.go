// Package cliptest gives tests camsim's clips as pictures ready for a hub
// or a recorder, without a camera. (It is apart from rtsptest because
// camsim's own tests use that one, and this one imports camsim.)
package cliptest

import (
	"testing"

	"gridwatch/camera/camsim"
	"gridwatch/camera/stream"
)

// Clip returns one of camsim's clips (camsim.ClipMain, camsim.ClipH265, …)
// as access units, with the stream parameters of its first picture (whose
// parameter sets lead it), for tests that publish or record pictures
// without a camera.
func Clip(tb testing.TB, name string) ([][][]byte, *stream.Params) {
	tb.Helper()
	aus, err := camsim.ClipAccessUnits(name)
	if err != nil {
		tb.Fatal(err)
	}
	var params *stream.Params
	if name == camsim.ClipH265 {
		params, err = stream.NewH265Params(aus[0][0], aus[0][1], aus[0][2])
	} else {
		params, err = stream.NewParams(aus[0][0], aus[0][1])
	}
	if err != nil {
		tb.Fatal(err)
	}
	return aus, params
}
