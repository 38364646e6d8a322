package forward

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/weftiot/weft/agent/internal/spool"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// BenchmarkForwarderDrain measures how fast a backlog leaves the spool for
// a real Mosquitto on loopback: b.N batches of 1000 samples, QoS 1, acked in
// the spool (fsync'd) as PUBACKs arrive. samples/s is the figure; the
// subscriber that proves delivery is not part of it.
func BenchmarkForwarderDrain(b *testing.B) {
	broker := testservers.Mosquitto(b)
	topics := wire.Topics{Prefix: "weft/v1"}
	data, status := topics.Data("s1", "bench"), topics.Status("s1", "bench")
	sp, err := spool.Open(filepath.Join(b.TempDir(), "spool.db"), spool.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()
	batch := wire.Batch{Agent: "bench", Site: "s1"}
	for i := 0; i < 1000; i++ {
		batch.Samples = append(batch.Samples, wire.Sample{Device: "dye-01", Point: "reg_" + string(rune('a'+i%26)), Value: wire.FloatValue(float64(i) * 0.1), TS: 1732540800123 + int64(i)})
	}
	for i := 0; i < b.N; i++ {
		if _, err := sp.Append(context.Background(), 1000, func(seq uint64) ([]byte, error) {
			batch.Seq = seq
			return wire.AppendBatch(nil, &batch), nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	fwd := New(sp, Options{Broker: broker.URL, ClientID: "bench", DataTopic: data, StatusTopic: status,
		Online: func() wire.Status { return wire.Status{V: 1, Agent: "bench", Site: "s1", State: wire.Online} }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- fwd.Run(ctx) }()
	for sp.Stats().Batches > 0 {
		time.Sleep(time.Millisecond)
	}
	took := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(b.N*1000)/took.Seconds(), "samples/s")
	b.ReportMetric(float64(b.N)/took.Seconds(), "batches/s")
}
