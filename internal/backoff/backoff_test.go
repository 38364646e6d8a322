package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelayBounds(t *testing.T) {
	for n := 1; n < 20; n++ {
		full := min(time.Second<<min(n-1, 5), 30*time.Second)
		for range 50 {
			if d := Delay(n, time.Second, 30*time.Second); d < full/2 || d > full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", n, d, full/2, full)
			}
		}
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Error("Sleep with a live context reported it was cut short")
	}
	if !Sleep(context.Background(), 0) {
		t.Error("Sleep(0) with a live context reported it was cut short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Error("Sleep with an ended context reported the full time passed")
	}
	if Sleep(ctx, 0) {
		t.Error("Sleep(0) with an ended context reported the full time passed")
	}
}
