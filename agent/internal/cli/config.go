package cli

import (
	"context"
	"fmt"
)

// configCheckCmd is not built yet; its issue owns it.
func configCheckCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stderr, "weft-agent: this command is not built yet")
	return 1
}

// configSampleCmd is not built yet; its issue owns it.
func configSampleCmd(ctx context.Context, env Env) int {
	fmt.Fprintln(env.Stderr, "weft-agent: this command is not built yet")
	return 1
}
