package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResponsiveDashboardInBrowser checks the dashboard on a phone (390×844
// and 360×740, touch), a tablet (820×1180) and a desktop screen (1440×900)
// as a commander and as a grid leader (assets/e2e/responsive.mjs): the map
// fills the screen, nothing runs off the side, every top-bar action is on
// the first screen or one tap away in the ☰ menu (keyboard and Esc
// included), the legend folds and covers little of the map folded, a
// grid's panel and the new-incident form are sheets on a phone, and the
// grid leader on a phone is pointed to the field app. Screenshots
// responsive-*.png are kept as artefacts.
func TestResponsiveDashboardInBrowser(t *testing.T) {
	var dir string
	runBrowserScript(t, "e2e/responsive.mjs", func(url, artifacts string) []string {
		dir = artifacts
		return []string{url, artifacts}
	})
	for _, name := range []string{"responsive-phone-grid_leader.png", "responsive-phone-commander-menu.png", "responsive-tablet-commander.png", "responsive-desktop-commander.png"} {
		if st, err := os.Stat(filepath.Join(dir, name)); err != nil || st.Size() < 10_000 {
			t.Errorf("screenshot %s missing or tiny: %v", name, err)
		}
	}
}

// TestPatrolsDashboardInBrowser follows a grid leader's patrol on the
// command centre's dashboard (assets/e2e/patrols.mjs): started and fed
// through the API, the member shows on the "巡查 Patrols" layer at their last
// fix, coloured by its age; new points move the marker live; the card shows
// the distance, grids and last fix; today's track is drawn coloured by time;
// Stats → Members has the member's row, sortable, and its CSV; the end of
// the patrol takes the marker off. Screenshots patrols-*.png are kept.
func TestPatrolsDashboardInBrowser(t *testing.T) {
	runBrowserScript(t, "e2e/patrols.mjs", func(url, artifacts string) []string { return []string{url, artifacts} })
}
