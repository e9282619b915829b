package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// Bounds and layout of bench plot. The SVG is written by hand: three line
// charts need ~200 lines, less than a plotting library's API would.
const (
	// benchPlotMaxFileBytes bounds one results file read (a 10-minute run
	// writes ~100 KiB).
	benchPlotMaxFileBytes = 64 << 20
	// benchPlotMaxFiles bounds the files on one chart: past a few the
	// lines cannot be told apart.
	benchPlotMaxFiles = 12

	plotWidth        = 900.0
	plotPanelHeight  = 270.0
	plotMarginLeft   = 70.0
	plotMarginRight  = 40.0
	plotPanelTop     = 36.0 // title above the plot area
	plotPanelBottom  = 44.0 // tick labels and axis title below it
	plotLegendRow    = 18.0
	plotLegendMargin = 12.0
)

// plotColors are the colors of the runs, in order (matplotlib's "tab10").
var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"}

func newBenchPlotCmd(g *globals) *cobra.Command {
	var svgPath string
	cmd := &cobra.Command{
		Use:   "plot RESULTS.json...",
		Short: "Draw bench --out files as SVG: throughput and latency over time, latency by percentile",
		Long: `Read one or more files written by bench --out and draw, as one SVG, three
charts with a line per file: throughput (ops/s) per second, latency per
second (p50 solid, p99 dashed), and latency by percentile on a log scale of
1/(1-percentile), as HdrHistogram's plots draw it. Several files compare
runs. The SVG goes to --svg, by default the first file with .svg for .json;
--svg - writes it to stdout.`,
		Example: "  wisp bench put --out put.json && wisp bench plot put.json\n" +
			"  wisp bench plot put-8-shards.json put-1-shard.json --svg put.svg",
		Args: wrapArgs(cobra.RangeArgs(1, benchPlotMaxFiles)),
		RunE: func(cmd *cobra.Command, args []string) error {
			runs := make([]plotRun, len(args))
			for i, path := range args {
				r, err := readPlotRun(path)
				if err != nil {
					return err
				}
				runs[i] = r
			}
			svg := plotSVG(runs)
			out := svgPath
			if out == "" {
				out = strings.TrimSuffix(args[0], filepath.Ext(args[0])) + ".svg"
			}
			if out == "-" {
				return writef(cmd.OutOrStdout(), "%s", svg)
			}
			if err := os.WriteFile(out, []byte(svg), 0o644); err != nil {
				return fmt.Errorf("bench plot: %w", err)
			}
			if g.json() {
				return writeJSON(cmd.OutOrStdout(), map[string]string{"svg": out})
			}
			return writef(cmd.OutOrStdout(), "wrote %s\n", out)
		},
	}
	cmd.Flags().StringVar(&svgPath, "svg", "", "the SVG file to write (default: the first file's name with .svg; -: stdout)")
	return cmd
}

// plotRun is one results file to draw.
type plotRun struct {
	label string // the file's name without .json
	res   benchResult
}

func readPlotRun(path string) (plotRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return plotRun{}, fmt.Errorf("bench plot: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, benchPlotMaxFileBytes+1))
	if err != nil {
		return plotRun{}, fmt.Errorf("bench plot: %w", err)
	}
	if len(data) > benchPlotMaxFileBytes {
		return plotRun{}, fmt.Errorf("bench plot: %s is over %d bytes", path, benchPlotMaxFileBytes)
	}
	r := plotRun{label: strings.TrimSuffix(filepath.Base(path), ".json")}
	if err := json.Unmarshal(data, &r.res); err != nil {
		return plotRun{}, fmt.Errorf("bench plot: %s: %w", path, err)
	}
	if len(r.res.Series) == 0 && len(r.res.Percentiles) == 0 {
		return plotRun{}, fmt.Errorf("bench plot: %s has no series or percentiles: write it with wisp bench --out", path)
	}
	return r, nil
}

// plotLine is one line of a chart.
type plotLine struct {
	run, name string // the run's label and the line's: "ops/s", "p50", "p99"
	color     string
	dashed    bool
	pts       [][2]float64 // x, y
}

// plotTick is an axis tick at value at, labeled label.
type plotTick struct {
	at    float64
	label string
}

// plotChart is one chart: lines over x in [xMin, xMax] and y from 0.
type plotChart struct {
	title, xTitle, yTitle string
	lines                 []plotLine
	xTicks                []plotTick // nil: nice ticks over the data
}

// plotSVG returns the charts of runs as an SVG document.
func plotSVG(runs []plotRun) string {
	var throughput, latency, spectrum plotChart
	throughput = plotChart{title: "Throughput per second", xTitle: "seconds", yTitle: "ops/s"}
	latency = plotChart{title: "Latency per second (p50 solid, p99 dashed)", xTitle: "seconds", yTitle: "ms"}
	spectrum = plotChart{title: "Latency by percentile", xTitle: "percentile", yTitle: "ms"}
	maxX := 1.0 // of the percentile chart: log10(1/(1-p))
	for i, r := range runs {
		color := plotColors[i%len(plotColors)]
		ops := plotLine{run: r.label, name: "ops/s", color: color}
		p50 := plotLine{run: r.label, name: "p50", color: color}
		p99 := plotLine{run: r.label, name: "p99", color: color, dashed: true}
		for _, p := range r.res.Series {
			x := float64(p.Second) + p.Seconds/2
			ops.pts = append(ops.pts, [2]float64{x, p.OpsPerSecond})
			if p.Ops > 0 {
				p50.pts = append(p50.pts, [2]float64{x, p.P50Ms})
				p99.pts = append(p99.pts, [2]float64{x, p.P99Ms})
			}
		}
		// The max (percentile 100) is drawn where the last of n calls
		// sits, 1-1/n, beyond the other points.
		last := math.Log10(float64(max(r.res.Calls, 2)))
		pct := plotLine{run: r.label, name: "latency by percentile", color: color}
		for _, p := range r.res.Percentiles {
			x := last
			if p.Percentile < 100 {
				x = min(-math.Log10(1-p.Percentile/100), last)
			}
			pct.pts = append(pct.pts, [2]float64{x, p.LatencyMs})
			maxX = max(maxX, x)
		}
		throughput.lines = append(throughput.lines, ops)
		latency.lines = append(latency.lines, p50, p99)
		spectrum.lines = append(spectrum.lines, pct)
	}
	for k := 0; float64(k) <= math.Ceil(maxX); k++ {
		label := "0%"
		if k > 0 {
			label = strconv.FormatFloat(100*(1-math.Pow(10, -float64(k))), 'f', max(0, k-2), 64) + "%"
		}
		spectrum.xTicks = append(spectrum.xTicks, plotTick{float64(k), label})
	}

	legendHeight := plotLegendMargin*2 + plotLegendRow*float64(len(runs))
	height := legendHeight + 3*plotPanelHeight
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, r := range runs {
		y := plotLegendMargin + plotLegendRow*float64(i) + plotLegendRow/2
		color := plotColors[i%len(plotColors)]
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s" stroke-width="3"/>`+"\n", plotMarginLeft, y, plotMarginLeft+24, y, color)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" dominant-baseline="middle">%s</text>`+"\n", plotMarginLeft+32, y, xmlText(plotRunSummary(r)))
	}
	for i, c := range []plotChart{throughput, latency, spectrum} {
		drawChart(&b, c, legendHeight+plotPanelHeight*float64(i))
	}
	b.WriteString("</svg>\n")
	return b.String()
}

// plotRunSummary is a run's legend: its label and main figures.
func plotRunSummary(r plotRun) string {
	res := r.res
	s := fmt.Sprintf("%s: %s, %s, %.0f ops/s, p50 %.2f ms, p99 %.2f ms", r.label, res.Op, plural(res.Clients, "client"), res.OpsPerSecond, res.LatencyMs.P50, res.LatencyMs.P99)
	if res.ServerCPUSecondsPer1kOps != nil {
		s += fmt.Sprintf(", server CPU %.3f s/1k ops", *res.ServerCPUSecondsPer1kOps)
	}
	return s
}

// drawChart draws c with its top at y0.
func drawChart(b *strings.Builder, c plotChart, y0 float64) {
	left, right := plotMarginLeft, plotWidth-plotMarginRight
	top, bottom := y0+plotPanelTop, y0+plotPanelHeight-plotPanelBottom
	xMax, yMax := 0.0, 0.0
	for _, l := range c.lines {
		for _, p := range l.pts {
			xMax, yMax = max(xMax, p[0]), max(yMax, p[1])
		}
	}
	xTicks := c.xTicks
	if xTicks == nil {
		xTicks = niceTicks(xMax)
	}
	yTicks := niceTicks(yMax)
	xMax = max(xMax, xTicks[len(xTicks)-1].at)
	yMax = max(yMax, yTicks[len(yTicks)-1].at)
	sx := func(x float64) float64 { return left + (right-left)*x/xMax }
	sy := func(y float64) float64 { return bottom - (bottom-top)*y/yMax }

	fmt.Fprintf(b, `<g class="chart"><text x="%.0f" y="%.1f" font-size="14" font-weight="bold">%s</text>`+"\n", left, y0+plotPanelTop-12, xmlText(c.title))
	for _, t := range yTicks {
		y := sy(t.at)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n",
			left, y, right, y, left-6, y, xmlText(t.label))
	}
	for _, t := range xTicks {
		x := sx(t.at)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/><text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n",
			x, top, x, bottom, x, bottom+16, xmlText(t.label))
	}
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#444"/>`+"\n", left, top, right-left, bottom-top)
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", (left+right)/2, bottom+34, xmlText(c.xTitle))
	fmt.Fprintf(b, `<text transform="translate(%.1f %.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", left-52, (top+bottom)/2, xmlText(c.yTitle))
	for _, l := range c.lines {
		if len(l.pts) == 0 {
			continue
		}
		dash := ""
		if l.dashed {
			dash = ` stroke-dasharray="6 4"`
		}
		fmt.Fprintf(b, `<polyline class="series" data-run="%s" data-series="%s" fill="none" stroke="%s" stroke-width="1.5"%s points="`,
			xmlText(l.run), xmlText(l.name), l.color, dash)
		for i, p := range l.pts {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(b, "%.1f,%.1f", sx(p[0]), sy(p[1]))
		}
		fmt.Fprintf(b, `"><title>%s %s</title></polyline>`+"\n", xmlText(l.run), xmlText(l.name))
		if len(l.pts) == 1 { // a line of one point shows nothing
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>`+"\n", sx(l.pts[0][0]), sy(l.pts[0][1]), l.color)
		}
	}
	b.WriteString("</g>\n")
}

// niceTicks returns ticks from 0 to at least hi, 3 to 10 of them, at
// steps of 1, 2 or 5 times a power of ten.
func niceTicks(hi float64) []plotTick {
	if !(hi > 0) || math.IsInf(hi, 0) {
		hi = 1
	}
	step := math.Pow(10, math.Floor(math.Log10(hi/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if hi/(step*m) <= 6 {
			step *= m
			break
		}
	}
	decimals := max(0, -int(math.Floor(math.Log10(step))))
	var ticks []plotTick
	for k := 0; ; k++ {
		v := float64(k) * step
		ticks = append(ticks, plotTick{v, strconv.FormatFloat(v, 'f', decimals, 64)})
		if v >= hi {
			return ticks
		}
	}
}

// xmlText returns s escaped for XML text and attribute values.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s)) // a strings.Builder does not fail
	return b.String()
}
