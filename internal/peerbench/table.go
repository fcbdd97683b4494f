package peerbench

import (
	"cmp"
	"fmt"
	"strings"
)

// Table writes results as a Markdown table, a load at a time, with each
// server's cores and RSS also as a ratio to the cheapest peer's under the
// same load, and what each server was built from.
func Table(results []Result, versions map[string]string) string {
	var sb strings.Builder
	sb.WriteString("| load | server | cores (lowest–highest) | RSS (lowest–highest) | ctx switches/s | writes per picture per viewer | pictures/s per viewer | late joiner's first keyframe p50 / p95 | cores vs best peer | RSS vs best peer |\n")
	sb.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for i := 0; i < len(results); {
		j := i
		for j < len(results) && results[j].Load == results[i].Load && results[j].Protocol == results[i].Protocol {
			j++
		}
		group := results[i:j]
		var bestCores, bestRSS float64
		for _, r := range group {
			if r.Server == "gridwatch" {
				continue
			}
			if bestCores == 0 || r.Cores < bestCores {
				bestCores = r.Cores
			}
			if rss := float64(r.RSS); bestRSS == 0 || rss < bestRSS {
				bestRSS = rss
			}
		}
		for _, r := range group {
			ratio := func(v, best float64) string {
				if best == 0 {
					return "—"
				}
				return fmt.Sprintf("%.2f×", v/best)
			}
			cores, rss := fmt.Sprintf("%.3f", r.Cores), fmt.Sprintf("%.0f MiB", float64(r.RSS)/(1<<20))
			if r.Runs > 1 {
				cores += fmt.Sprintf(" (%.3f–%.3f)", r.CoresRange[0], r.CoresRange[1])
				rss += fmt.Sprintf(" (%.0f–%.0f)", float64(r.RSSRange[0])/(1<<20), float64(r.RSSRange[1])/(1<<20))
			}
			over := ""
			if r.Protocol != "" && r.Protocol != ProtoRTSP {
				over = " " + strings.ToUpper(r.Protocol)
			}
			fmt.Fprintf(&sb, "| %d × %d%s | %s | %s | %s | %.0f | %.2f | %.1f | %.0f / %.0f ms | %s | %s |\n",
				r.Load.Cameras, r.Load.Viewers, over, r.Server, cores, rss, r.CtxSw, r.WritesPerPicture, r.FPS,
				float64(r.JoinP(0.5).Microseconds())/1000, float64(r.JoinP(0.95).Microseconds())/1000,
				ratio(r.Cores, bestCores), ratio(float64(r.RSS), bestRSS))
		}
		i = j
	}
	if len(results) > 0 && results[0].Runs > 1 {
		fmt.Fprintf(&sb, "\nMedians of %d runs a server and load, the servers taking turns.\n", results[0].Runs)
	}
	sb.WriteString("\nBuilt from:")
	for _, s := range []string{"go2rtc", "mediamtx", "gridwatch"} {
		if v, ok := versions[s]; ok {
			fmt.Fprintf(&sb, " %s %s;", s, cmp.Or(v, "unknown"))
		}
	}
	sb.WriteString("\n")
	return sb.String()
}
