package dashboard

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/weftiot/weft/gateway/internal/registry"
)

// BenchmarkHistorySample is one sampling round over a fleet of 1,000 agents
// (the sampler runs one every 10 s), with their hour of history full.
func BenchmarkHistorySample(b *testing.B) {
	agents := make([]registry.Agent, 1000)
	for i := range agents {
		agents[i] = registry.Agent{Site: fmt.Sprintf("site-%d", i%20), ID: fmt.Sprintf("agent-%04d", i), State: registry.StateOnline}
	}
	h := newHistory(10*time.Second, time.Hour)
	now := time.Now()
	for i := 0; i < h.keep; i++ {
		h.sample(agents, now.Add(time.Duration(i)*10*time.Second))
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range agents {
			agents[j].LastHealth = int64(i)
			agents[j].Link.PublishedSamples += 100
		}
		h.sample(agents, now.Add(time.Duration(h.keep+i)*10*time.Second))
	}
}

// BenchmarkPage renders the fleet page shell.
func BenchmarkPage(b *testing.B) {
	d, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := d.page("fleet")
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Accept-Language", "zh-CN,zh;q=0.9")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
