package soak

import (
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Series is one line of a panel: a value per sample.
type Series struct {
	Name   string
	Values []float64
}

// Panel is one small chart: a metric (or a few of one kind) over time.
type Panel struct {
	Title  string
	Unit   string
	Series []Series
}

// The plot's geometry, in SVG user units.
const (
	panelW, panelH = 380, 190
	plotL, plotR   = 62, 14 // margins of the plot area inside a panel
	plotT, plotB   = 26, 28
	perRow         = 3
)

// colours of a panel's lines, in order.
var colours = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd"}

// WriteSVG draws the panels as small line charts side by side, perRow a
// row, time on x (t, seconds since the load started, one per sample) and y
// from zero (or the lowest value, when below zero) to a little above the
// highest, so a steady metric is a flat line. A dashed line marks the end
// of the warm-up.
func WriteSVG(w io.Writer, title string, t []float64, warmup time.Duration, panels []Panel) error {
	rows := (len(panels) + perRow - 1) / perRow
	width, height := perRow*panelW, rows*panelH+30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">`+"\n",
		width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="8" y="19" font-size="14" font-weight="bold">%s</text>`+"\n", html.EscapeString(title))
	tmax := 1.0
	if len(t) > 0 && t[len(t)-1] > 0 {
		tmax = t[len(t)-1]
	}
	for i, p := range panels {
		x0, y0 := float64(i%perRow*panelW), float64(30+i/perRow*panelH)
		drawPanel(&b, p, t, tmax, warmup.Seconds(), x0, y0)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func drawPanel(b *strings.Builder, p Panel, t []float64, tmax, warm, x0, y0 float64) {
	lo, hi := 0.0, 0.0
	first := true
	for _, s := range p.Series {
		for _, v := range s.Values {
			if math.IsNaN(v) {
				continue
			}
			if first {
				lo, hi, first = min(0, v), max(0, v), false
			}
			lo, hi = min(lo, v), max(hi, v)
		}
	}
	if hi == lo {
		hi = lo + 1
	}
	hi += (hi - lo) * 0.1
	pw, ph := float64(panelW-plotL-plotR), float64(panelH-plotT-plotB)
	px := func(tv float64) float64 { return x0 + plotL + tv/tmax*pw }
	py := func(v float64) float64 { return y0 + plotT + (hi-v)/(hi-lo)*ph }
	fmt.Fprintf(b, `<g class="panel"><text x="%s" y="%s" font-weight="bold">%s</text>`,
		num(x0+plotL), num(y0+plotT-9), html.EscapeString(p.Title+" ("+p.Unit+")"))
	fmt.Fprintf(b, `<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#999"/>`,
		num(x0+plotL), num(y0+plotT), num(pw), num(ph))
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="end">%s</text>`, num(x0+plotL-4), num(py(v)+4), label(v))
	}
	fmt.Fprintf(b, `<text x="%s" y="%s">0</text><text x="%s" y="%s" text-anchor="end">%s</text>`,
		num(px(0)), num(y0+plotT+ph+14), num(px(tmax)), num(y0+plotT+ph+14), html.EscapeString(clock(tmax)))
	if warm > 0 && warm < tmax {
		fmt.Fprintf(b, `<line class="warmup" x1="%s" y1="%s" x2="%s" y2="%s" stroke="#888" stroke-dasharray="4 3"/>`,
			num(px(warm)), num(y0+plotT), num(px(warm)), num(y0+plotT+ph))
	}
	for k, s := range p.Series {
		var pts []string
		for j, v := range s.Values {
			if j >= len(t) || math.IsNaN(v) {
				continue
			}
			pts = append(pts, num(px(t[j]))+","+num(py(v)))
		}
		fmt.Fprintf(b, `<polyline class="series" data-name="%s" fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`,
			html.EscapeString(s.Name), colours[k%len(colours)], strings.Join(pts, " "))
	}
	// Several lines: their names under the plot, between the time labels,
	// in their colours, where no line runs.
	if len(p.Series) > 1 {
		fmt.Fprintf(b, `<text x="%s" y="%s" text-anchor="middle">`, num(x0+plotL+pw/2), num(y0+plotT+ph+14))
		for k, s := range p.Series {
			fmt.Fprintf(b, `<tspan fill="%s">— %s </tspan>`, colours[k%len(colours)], html.EscapeString(s.Name))
		}
		b.WriteString("</text>")
	}
	b.WriteString("</g>\n")
}

// num formats a coordinate with one decimal.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// label formats an axis value briefly.
func label(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', 1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(v/1e3, 'f', 0, 64) + "k"
	case a >= 100 || v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// clock formats seconds as 1h02m or 3m00s.
func clock(sec float64) string {
	d := time.Duration(sec) * time.Second
	if d >= time.Hour {
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
}
