package config

import (
	"fmt"
	"strings"
	"testing"
)

// bigAgent is a plant-sized agent file: a 100-point profile used by
// devices devices, each overriding two points and adding one.
func bigAgent(devices int) []byte {
	var b strings.Builder
	b.WriteString(head + "profiles:\n  big:\n    protocol: modbus\n    points:\n")
	for i := 0; i < 100; i++ {
		fmt.Fprintf(&b, "      - {name: p%d, table: holding, address: %d, type: float32, order: CDAB, unit: bar, deadband: 0.1}\n", i, 2*i)
	}
	b.WriteString("devices:\n")
	for d := 0; d < devices; d++ {
		fmt.Fprintf(&b, "  - id: dev-%d\n    profile: big\n    tags: {hall: h%d}\n    modbus: {target: tcp://127.0.0.1:%d, unit: %d}\n", d, d%4, 5000+d, 1+d%200)
		b.WriteString("    points:\n      - {name: p3, deadband: 0.5}\n      - {name: p7, address: 400}\n      - {name: extra, table: input, address: 9, type: uint16}\n")
	}
	return []byte(b.String())
}

// BenchmarkParseAgent loads a 100-device, 10100-point agent file.
func BenchmarkParseAgent(b *testing.B) {
	data := bigAgent(100)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		a, err := ParseAgent("big.yaml", data)
		if err != nil || len(a.Devices) != 100 {
			b.Fatal(err)
		}
	}
}

func TestBigAgent(t *testing.T) {
	a, err := ParseAgent("big.yaml", bigAgent(20))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.Devices[19].Points); n != 101 {
		t.Errorf("points %d", n)
	}
}
