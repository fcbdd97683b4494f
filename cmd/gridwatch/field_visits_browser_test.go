package main

import "testing"

// TestFieldVisitsBrowser runs home visits (走访) in the field app on a phone
// in headless Chromium (assets/e2e/field-visits.mjs), in the demo city with
// its base data (DemoBase: some 2,400 households in demo-leader's
// community, all listed on the phone, searched at once, filtered by care
// flag). With the admin token the script imports buildings and households
// of its own (residents whose full ID numbers, phones and names it knows)
// into grids of that community; found by search among the demo's,
// demo-leader opens one, goes offline, records visits, reloads offline (the
// households and the pending visits are still there), and back online, with
// one answer lost on the way, each visit arrives once (a 200 replay) and
// shows as sent. No full ID number, phone or name is ever in the page,
// IndexedDB or the caches; a second leader signing in on the phone sees
// none of demo-leader's households, signing out leaves none, and a
// commander (no visits.record) is offered no visits.
func TestFieldVisitsBrowser(t *testing.T) {
	runBrowserScriptTuned(t, "e2e/field-visits.mjs", func(m *Main) { m.DemoBase = true }, nil,
		func(url, dir string) []string { return []string{url, dir, testAdminToken} })
}
