package main

import "testing"

// TestFieldBrowser runs the field app (/field/) on a phone in headless
// Chromium (assets/e2e/field.mjs): demo-leader signs in with a device
// session, sees their tasks (the demo's, overdue first) and one dispatched
// live, reports with a photo and a fake position (resized on the phone);
// offline, reports again and hands a task in, and both arrive exactly once
// when the network returns, through lost answers; a step the case moved past
// meanwhile stays on the task as a conflict; a double tap queues one step,
// and a retried conflict carries the steps queued after it. A dashboard
// session is not taken for the phone's; another member signing in on the
// phone sends nothing of the first one's queue and is offered to sign in as
// them or discard it; signing out offline is refused, and signed out, the
// first member's grids and photos are in no cache. It checks installability (CDP),
// the service worker's offline shell and saved task list, no sideways
// scrolling at 390 and 360 px, 44 px controls, every action within one tap,
// and a patrol's points and monthly statistics. It logs the FIELD-BENCH
// figures (first load throttled, cold and from the cache; the photo's upload
// size) and keeps screenshots field-*.png as artefacts.
func TestFieldBrowser(t *testing.T) {
	runBrowserScriptTuned(t, "e2e/field.mjs", func(m *Main) { m.DemoTasks = true }, nil,
		func(url, dir string) []string { return []string{url, dir} })
}

// TestDevicesBrowser: a lost phone signed out by an admin
// (assets/e2e/devices.mjs): demo-leader signs in to the field app with a
// device name; demo-admin finds the phone under Admin → Users → Devices and
// signs it out; the phone's cookie is refused and the app asks to sign in
// again; the audit log names the phone.
func TestDevicesBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/devices.mjs", func(url, dir string) []string { return []string{url, dir} })
}
