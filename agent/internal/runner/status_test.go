package runner

import (
	"strings"
	"testing"

	"github.com/weftiot/weft/wire"
)

// TestStatusPageEscapes: every string on the status page comes from a
// config, a device or the network, and is written escaped, in text and in
// the class attribute alike.
func TestStatusPageEscapes(t *testing.T) {
	const evil = `<script>alert("x")</script>'&`
	const escaped = `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&#39;&amp;`
	h := wire.Health{Agent: evil, Site: evil, Version: evil, ConfigHash: evil, UptimeS: 61,
		Spool:     wire.SpoolHealth{Batches: 3, Samples: 30, Bytes: 900, OldestAgeMs: 1500, DroppedOldest: 4, DroppedNewest: 5, DroppedExpired: 1, DroppedCorrupt: 6, LostSamples: 7, LastSeq: 77},
		Forwarder: wire.ForwardHealth{LastError: evil, SamplesPerS: 12.34, BatchesPerS: 0.5},
		Devices: []wire.DeviceHealth{
			{ID: evil, Protocol: evil, State: `down" onmouseover="alert(1)`, Reads: 10, Errors: 2, ErrorsByKind: map[string]uint64{wire.ErrorTimeout: 1, wire.ErrorException: 3, "<b>": 9}, Requests: 12, LatencyMs: 3.25, Samples: 8, LastError: evil},
			{ID: "dyer2", Protocol: "modbus", State: wire.DeviceOK},
		}}
	var b strings.Builder
	if err := writeStatus(&b, h); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if strings.Contains(page, "<script") || strings.Contains(page, `" onmouseover`) || strings.Contains(page, `"x"`) {
		t.Fatalf("unescaped input on the status page:\n%s", page)
	}
	// Agent twice, site, version, config hash, last error, device id,
	// protocol and last error.
	if n := strings.Count(page, escaped); n != 9 {
		t.Errorf("%d escaped copies of the input, want 9:\n%s", n, page)
	}
	for _, want := range []string{
		`<b class="down">not connected</b>`,
		`up 61s`,
		`spool: 3 batches, 30 samples, 900 bytes, oldest 1.5s;`,
		`dropped 4 oldest (1 of them expired) / 5 newest / 6 corrupt; 7 lost by the pipeline; last seq 77</p>`,
		`publishing 12.3 samples/s, 0.50 batches/s</p>`,
		`<td class="down&#34; onmouseover=&#34;alert(1)">`,
		`<td>10<td>2<td>timeout 1, exception 3<td>12<td>3.2<td>8<td>`,
		`<tr><td>dyer2<td>modbus<td class="ok">ok<td>0<td>0<td><td>0<td>0.0<td>0<td>` + "\n",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("status page lacks %q:\n%s", want, page)
		}
	}
	h.Forwarder = wire.ForwardHealth{Connected: true}
	b.Reset()
	writeStatus(&b, h)
	if !strings.Contains(b.String(), "broker connected · publishing 0.0 samples/s, 0.00 batches/s</p>") {
		t.Errorf("connected broker not shown:\n%s", b.String())
	}
}
