package e2e

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strings"
	"time"
)

// WriteChart draws the agent's spool backlog and the samples/s InfluxDB
// accepted over samples as a PNG, with the fault window [faultFrom,
// faultTo] shaded. It uses only image/png and a built-in 5×7 pixel font.
func WriteChart(path, title string, samples []Sample, faultFrom, faultTo time.Time) error {
	if len(samples) < 2 {
		return fmt.Errorf("chart %s: %d samples, need at least 2", path, len(samples))
	}
	const w, h = 960, 560
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	t0 := samples[0].At
	span := samples[len(samples)-1].At.Sub(t0).Seconds()

	backlog := make([]point, 0, len(samples))
	rate := make([]point, 0, len(samples))
	for i, s := range samples {
		x := s.At.Sub(t0).Seconds()
		if s.AgentBacklog >= 0 {
			backlog = append(backlog, point{x, s.AgentBacklog})
		}
		if i > 0 {
			p := samples[i-1]
			if s.GatewayWritten >= 0 && p.GatewayWritten >= 0 && s.GatewayWritten >= p.GatewayWritten {
				rate = append(rate, point{x, (s.GatewayWritten - p.GatewayWritten) / s.At.Sub(p.At).Seconds()})
			}
		}
	}
	rate = smooth(rate, 4) // one second at the monitor's period

	text(img, 20, 12, 2, strings.ToUpper(title), color.RGBA{0, 0, 0, 255})
	panels := []struct {
		label string
		pts   []point
		col   color.RGBA
		r     image.Rectangle
	}{
		{"AGENT SPOOL BACKLOG (SAMPLES)", backlog, color.RGBA{200, 60, 20, 255}, image.Rect(90, 60, w-20, 280)},
		{"SAMPLES/S STORED IN INFLUXDB (1 S MEAN)", rate, color.RGBA{20, 90, 200, 255}, image.Rect(90, 320, w-20, h-50)},
	}
	for _, p := range panels {
		ymax := 0.0
		for _, q := range p.pts {
			ymax = math.Max(ymax, q.y)
		}
		ymax = niceCeil(ymax)
		// fault window
		fx0 := p.r.Min.X + int(faultFrom.Sub(t0).Seconds()/span*float64(p.r.Dx()))
		fx1 := p.r.Min.X + int(faultTo.Sub(t0).Seconds()/span*float64(p.r.Dx()))
		fill(img, image.Rect(max(fx0, p.r.Min.X), p.r.Min.Y, min(fx1, p.r.Max.X), p.r.Max.Y), color.RGBA{255, 228, 228, 255})
		// frame and grid
		grey := color.RGBA{200, 200, 200, 255}
		for i := 0; i <= 4; i++ {
			y := p.r.Max.Y - i*p.r.Dy()/4
			hline(img, p.r.Min.X, p.r.Max.X, y, grey)
			text(img, 4, y-7, 2, short(ymax*float64(i)/4), color.RGBA{60, 60, 60, 255})
		}
		step := niceCeil(span / 10)
		for s := 0.0; s <= span; s += step {
			x := p.r.Min.X + int(s/span*float64(p.r.Dx()))
			vline(img, x, p.r.Min.Y, p.r.Max.Y, grey)
			text(img, x-8, p.r.Max.Y+6, 2, fmt.Sprintf("%.0f", s), color.RGBA{60, 60, 60, 255})
		}
		black := color.RGBA{0, 0, 0, 255}
		hline(img, p.r.Min.X, p.r.Max.X, p.r.Max.Y, black)
		vline(img, p.r.Min.X, p.r.Min.Y, p.r.Max.Y, black)
		text(img, p.r.Min.X+8, p.r.Min.Y-22, 2, p.label, p.col)
		// the series
		if ymax <= 0 {
			ymax = 1
		}
		for i := 1; i < len(p.pts); i++ {
			a, b := p.pts[i-1], p.pts[i]
			line(img,
				p.r.Min.X+int(a.x/span*float64(p.r.Dx())), p.r.Max.Y-int(a.y/ymax*float64(p.r.Dy())),
				p.r.Min.X+int(b.x/span*float64(p.r.Dx())), p.r.Max.Y-int(b.y/ymax*float64(p.r.Dy())), p.col)
		}
	}
	text(img, w/2-160, h-20, 2, "SECONDS (SHADED: FAULT)", color.RGBA{60, 60, 60, 255})
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type point struct{ x, y float64 }

// smooth is a moving mean over n points.
func smooth(p []point, n int) []point {
	out := make([]point, len(p))
	var s float64
	for i := range p {
		s += p[i].y
		if i >= n {
			s -= p[i-n].y
		}
		out[i] = point{p[i].x, s / float64(min(i+1, n))}
	}
	return out
}

// niceCeil rounds v up to 1, 2 or 5 × a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// short writes 1500 as 1.5K, 2000000 as 2M.
func short(v float64) string {
	switch {
	case v >= 1e6:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v/1e6), "0"), ".") + "M"
	case v >= 1e3:
		return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v/1e3), "0"), ".") + "K"
	}
	return fmt.Sprintf("%.0f", v)
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

// line draws a two-pixel-wide line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		img.SetRGBA(x0, y0, c)
		img.SetRGBA(x0, y0+1, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// text draws s at (x, y) in the 5×7 font, each font pixel scale×scale.
// Characters without a glyph are drawn as blanks.
func text(img *image.RGBA, x, y, scale int, s string, c color.RGBA) {
	for _, r := range s {
		if g, ok := glyphs[r]; ok {
			for row, bits := range g {
				for col, b := range bits {
					if b == '#' {
						fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
					}
				}
			}
		}
		x += 6 * scale
	}
}

// glyphs is a 5×7 pixel font of the characters the charts use.
var glyphs = map[rune][7]string{
	'0': {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "},
	'1': {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'2': {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"},
	'3': {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "},
	'4': {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "},
	'5': {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "},
	'6': {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "},
	'7': {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "},
	'8': {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "},
	'9': {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "},
	'A': {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'B': {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "},
	'C': {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "},
	'D': {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "},
	'E': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"},
	'F': {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "},
	'G': {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"},
	'H': {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"},
	'I': {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "},
	'J': {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "},
	'K': {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"},
	'L': {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"},
	'M': {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"},
	'N': {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"},
	'O': {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'P': {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "},
	'Q': {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"},
	'R': {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"},
	'S': {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "},
	'T': {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "},
	'U': {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "},
	'V': {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "},
	'W': {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "},
	'X': {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"},
	'Y': {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "},
	'Z': {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"},
	'.': {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "},
	',': {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "},
	':': {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "},
	'/': {"     ", "    #", "   # ", "  #  ", " #   ", "#    ", "     "},
	'-': {"     ", "     ", "     ", "#####", "     ", "     ", "     "},
	'(': {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "},
	')': {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "},
	'%': {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"},
	'=': {"     ", "     ", "#####", "     ", "#####", "     ", "     "},
	'+': {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "},
}
