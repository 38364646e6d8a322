package cli

import (
	"context"
	"fmt"
)

// onceCmd is not built yet; its issue owns it.
func onceCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stderr, "weft-agent: this command is not built yet")
	return 1
}
