package bench

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
)

// Colors of the series in the chart.
var seriesColor = map[string]string{
	Store: "#1f77b4", Memory: "#2ca02c", WALOff: "#bcbd22", WALNormal: "#ff7f0e", WALFull: "#d62728", RollbackFull: "#8c564b",
	CkptRaw: "#7f7f7f", CkptVacuum: "#9467bd", CkptBackup: "#e377c2",
}

// bar is one bar of a chart: series within group, and its value.
type bar struct {
	group, series string
	value         float64
	label         string // the value as printed
}

// SVG layout, in pixels.
const (
	svgWidth  = 980
	svgLabelW = 250
	svgPlotW  = 600
	svgBarH   = 12
	svgBarGap = 3
	svgGroupG = 12
)

// WriteSVG writes a bar chart of the report's commit throughput and
// checkpoint times (log scales) as a standalone SVG document. Every bar
// carries data-chart, data-group and data-series attributes and a title.
func WriteSVG(w io.Writer, r *Report) error {
	var tp, ck []bar
	for _, c := range r.Commit {
		tp = append(tp, bar{c.Mode, c.Variant, c.CommitsPerSec, grp(c.CommitsPerSec) + " commits/s"})
	}
	for _, c := range r.Checkpoint {
		g := fmt.Sprintf("%d MiB, %g%% dirty", c.DBMiB, c.DirtyPct)
		for _, m := range CkptMethods {
			v := map[string]float64{CkptStore: c.StoreMs, CkptRaw: c.RawMs, CkptVacuum: c.VacuumMs, CkptBackup: c.BackupMs}[m]
			ck = append(ck, bar{g, m, v, msStr(v) + " ms"})
		}
	}
	var body bytes.Buffer
	y := 30
	title := fmt.Sprintf("ejectsafe bench on %s (%s)", r.FS.Type, r.Command)
	fmt.Fprintf(&body, `<text x="10" y="20" font-size="15" font-weight="bold">%s</text>`+"\n", esc(title))
	y = chart(&body, "throughput", "Commit throughput, commits/s (log scale; longer is better)", tp, y+10)
	y = chart(&body, "checkpoint", "Checkpoint time, ms (log scale; shorter is better)", ck, y+20)
	_, err := fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="11">
<rect width="100%%" height="100%%" fill="white"/>
%s</svg>
`, svgWidth, y+10, svgWidth, y+10, body.String())
	return err
}

// chart draws one horizontal bar chart with a log-scale axis starting at
// y, and returns the y below it.
func chart(b *bytes.Buffer, id, title string, bars []bar, y int) int {
	fmt.Fprintf(b, `<g id="%s">`+"\n", id)
	defer b.WriteString("</g>\n")
	fmt.Fprintf(b, `<text x="10" y="%d" font-size="13" font-weight="bold">%s</text>`+"\n", y+12, esc(title))
	y += 22
	lo, hi := math.Inf(1), 0.0
	var series []string
	seen := map[string]bool{}
	for _, br := range bars {
		if br.value > 0 {
			lo, hi = math.Min(lo, br.value), math.Max(hi, br.value)
		}
		if !seen[br.series] {
			seen[br.series] = true
			series = append(series, br.series)
		}
	}
	if hi == 0 {
		fmt.Fprintf(b, `<text x="10" y="%d">no data</text>`+"\n", y+12)
		return y + 20
	}
	// The axis starts a decade below the smallest value's if that value
	// is close to it, so that every bar shows.
	l0, l1 := math.Floor(math.Log10(lo/2)), math.Ceil(math.Log10(hi))
	if l1 <= l0 {
		l1 = l0 + 1
	}
	xOf := func(v float64) float64 {
		if v <= 0 {
			return 0
		}
		return (math.Log10(v) - l0) / (l1 - l0) * svgPlotW
	}
	// Legend.
	x := 10
	for _, s := range series {
		fmt.Fprintf(b, `<rect x="%d" y="%d" width="10" height="10" fill="%s"/><text x="%d" y="%d">%s</text>`+"\n", x, y, seriesColor[s], x+14, y+9, esc(s))
		x += 20 + 7*len(s)
	}
	y += 20
	top := y
	// Bars, grouped; drawn after the grid lines, which need their extent.
	var bb bytes.Buffer
	group := ""
	for _, br := range bars {
		if br.group != group {
			if group != "" {
				y += svgGroupG
			}
			group = br.group
			fmt.Fprintf(&bb, `<text x="10" y="%d" font-weight="bold">%s</text>`+"\n", y+svgBarH-2, esc(group))
		}
		wd := xOf(br.value)
		fmt.Fprintf(&bb, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", svgLabelW-6, y+svgBarH-2, esc(br.series))
		fmt.Fprintf(&bb, `<rect class="bar" data-chart="%s" data-group="%s" data-series="%s" x="%d" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
			id, esc(br.group), esc(br.series), svgLabelW, y, wd, svgBarH, seriesColor[br.series], esc(br.group+", "+br.series+": "+br.label))
		fmt.Fprintf(&bb, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(svgLabelW)+wd+4, y+svgBarH-2, esc(br.label))
		y += svgBarH + svgBarGap
	}
	// Decade grid lines and labels.
	for l := l0; l <= l1; l++ {
		gx := float64(svgLabelW) + xOf(math.Pow(10, l))
		fmt.Fprintf(b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc" stroke-dasharray="2,2"/>`+"\n", gx, top-4, gx, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%s</text>`+"\n", gx, y+12, esc(decade(l)))
	}
	b.Write(bb.Bytes())
	return y + 16
}

func decade(l float64) string {
	v := math.Pow(10, l)
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}

func esc(s string) string {
	var sb strings.Builder
	xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
