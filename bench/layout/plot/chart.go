package main

import (
	"fmt"
	"image/color"
	"io"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/ferrymq/ferry/bench/layout"
)

// Chart draws write throughput (msg/s) against the topic count, one line
// per layout and flush mode, both axes logarithmic.
func Chart(r layout.Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Write throughput vs topics (%d queues each, %d B messages)", r.Config.Queues, r.Config.MessageSize)
	p.X.Label.Text = "topics"
	p.Y.Label.Text = "messages per second"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = true
	styles := map[string]struct {
		c    color.Color
		dash []vg.Length
	}{
		"ferry async": {color.RGBA{0x1f, 0x77, 0xb4, 0xff}, nil},
		"ferry sync":  {color.RGBA{0x1f, 0x77, 0xb4, 0xff}, []vg.Length{vg.Points(6), vg.Points(3)}},
		"kafka async": {color.RGBA{0xd6, 0x27, 0x28, 0xff}, nil},
		"kafka sync":  {color.RGBA{0xd6, 0x27, 0x28, 0xff}, []vg.Length{vg.Points(6), vg.Points(3)}},
	}
	series := map[string]plotter.XYs{}
	for _, pt := range r.Points {
		if pt.MsgPerSec <= 0 {
			continue // a log scale cannot show zero
		}
		k := string(pt.Layout) + " " + pt.Flush
		series[k] = append(series[k], plotter.XY{X: float64(pt.Topics), Y: pt.MsgPerSec})
	}
	if len(series) == 0 {
		return nil, fmt.Errorf("%w: no positive throughput to chart", layout.ErrMalformed)
	}
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		xy := series[k]
		sort.Slice(xy, func(i, j int) bool { return xy[i].X < xy[j].X })
		line, points, err := plotter.NewLinePoints(xy)
		if err != nil {
			return nil, err
		}
		st := styles[k]
		line.Color, line.Dashes, line.Width = st.c, st.dash, vg.Points(1.5)
		points.Color = st.c
		points.Shape = draw.CircleGlyph{}
		p.Add(line, points)
		p.Legend.Add(k, line, points)
	}
	p.Add(plotter.NewGrid())
	// A log axis needs a range: one topic count (or one throughput) alone
	// would give it none, so widen it around that value.
	if p.X.Min == p.X.Max {
		p.X.Min, p.X.Max = p.X.Min/2, p.X.Max*2
	}
	if p.Y.Min == p.Y.Max {
		p.Y.Min, p.Y.Max = p.Y.Min/2, p.Y.Max*2
	}
	return p, nil
}

// WriteChart writes the chart in the format named by ext ("png" or "svg").
func WriteChart(w io.Writer, r layout.Report, ext string) error {
	p, err := Chart(r)
	if err != nil {
		return err
	}
	wt, err := p.WriterTo(8*vg.Inch, 5*vg.Inch, ext)
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}
