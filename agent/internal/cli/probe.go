package cli

import (
	"context"
	"fmt"
)

// probeModbusCmd is not built yet; its issue owns it.
func probeModbusCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stderr, "weft-agent: this command is not built yet")
	return 1
}

// scanModbusCmd is not built yet; its issue owns it.
func scanModbusCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stderr, "weft-agent: this command is not built yet")
	return 1
}
