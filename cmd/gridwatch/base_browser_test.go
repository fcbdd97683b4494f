package main

import "testing"

// TestBaseDataBrowser checks base data (issue 19) on the dashboard
// (assets/e2e/base.mjs), in the demo city with its base data: a building,
// households and residents, components and a parcel imported through the
// API into a grid of the demo grid leader's; the grid panel's figures are
// the API's summary and drill into lists; the building card opens from its
// list (by keyboard) and from a click on its footprint; residents are
// masked everywhere for the commander, who has no Reveal and no state
// select, and whose "report a problem" files a case linked to the
// component; buildings and components are drawn at zoom 14, 15 and 16;
// the community's figures are its summary's and its households list pages
// through the demo's thousands; the operator sees counts only; the grid leader reveals one
// resident with a purpose (audited), and the full values leave the page
// with the card; the leader sets a component's state; on a phone the card
// is a sheet. Screenshots base-*.png are kept as artefacts.
func TestBaseDataBrowser(t *testing.T) {
	runBrowserScriptTuned(t, "e2e/base.mjs", func(m *Main) { m.DemoBase = true }, nil, func(url, artifacts string) []string {
		return []string{url, artifacts, testAdminToken}
	})
}
