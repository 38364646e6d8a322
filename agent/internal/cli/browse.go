package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/weftiot/weft/protocols/opcua"
)

// browseOPCUACmd prints an OPC UA server's address space as a tree, or, with
// --config, a points: section for the variables found.
func browseOPCUACmd(ctx context.Context, env Env) int {
	fs := flag.NewFlagSet("browse opcua", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	var cfg opcua.DeviceConfig
	home, _ := os.UserHomeDir()
	fs.StringVar(&cfg.Endpoint, "endpoint", "", "server endpoint, opc.tcp://host:port[/path] (required)")
	node := fs.String("node", "i=85", "NodeId to start from (i=85 is the Objects folder)")
	depth := fs.Int("depth", 3, "how many levels to descend")
	fs.StringVar(&cfg.SecurityPolicy, "security-policy", "None", "None, Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss")
	fs.StringVar(&cfg.SecurityMode, "security-mode", "None", "None, Sign or SignAndEncrypt")
	fs.StringVar(&cfg.Username, "username", "", "log in with this user (auth username)")
	fs.StringVar(&cfg.Password, "password", "", "the user's password")
	fs.StringVar(&cfg.PasswordFile, "password-file", "", "read the password from this file")
	certAuth := fs.Bool("cert-auth", false, "log in with the agent's certificate (auth certificate)")
	dataDir := fs.String("data-dir", filepath.Join(home, ".weft-agent"), "where the agent's certificate and trust list (pki/) live")
	fs.DurationVar(&cfg.Timeout, "timeout", 5*time.Second, "connect and request timeout")
	asConfig := fs.Bool("config", false, "print a points: section for the variables found instead of the tree")
	fs.Usage = func() {
		fmt.Fprintln(env.Stderr, "usage: weft-agent browse opcua --endpoint opc.tcp://HOST:PORT [--node ns=0;i=85] [--depth 3]")
		fmt.Fprintln(env.Stderr, "       [--security-policy P --security-mode M] [--username U --password P] [--config]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(env.Args); err != nil {
		return 2
	}
	if cfg.Endpoint == "" || fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			fmt.Fprintf(env.Stderr, "weft-agent browse opcua: --password-file: %v\n", err)
			return 1
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	switch {
	case cfg.Username != "":
		cfg.Auth = "username"
	case *certAuth:
		cfg.Auth = "certificate"
	}
	d, err := opcua.New("browse", cfg, nil, *dataDir, env.Logger)
	if err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent browse opcua: %v\n", err)
		return 2
	}
	defer d.Close()
	if err := d.Connect(ctx); err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent browse opcua: %v\n", err)
		return 1
	}
	nodes, err := d.Browse(ctx, *node, *depth)
	if err != nil {
		fmt.Fprintf(env.Stderr, "weft-agent browse opcua: %v\n", err)
		return 1
	}
	if *asConfig {
		writePoints(env.Stdout, nodes)
	} else {
		writeTree(env.Stdout, *node, nodes)
	}
	return 0
}

func writeTree(w io.Writer, root string, nodes []opcua.BrowseNode) {
	fmt.Fprintln(w, root)
	for _, n := range nodes {
		indent := strings.Repeat("  ", n.Depth+1)
		if n.Class == ua.NodeClassVariable {
			kind := n.DataType
			if n.Rank >= 0 {
				kind += "[]"
			}
			fmt.Fprintf(w, "%s%s  %s  %s = %s\n", indent, n.BrowseName, n.NodeID, kind, n.Value)
			continue
		}
		fmt.Fprintf(w, "%s%s  %s  (%s)\n", indent, n.BrowseName, n.NodeID, strings.TrimPrefix(n.Class.String(), "NodeClass"))
	}
}

// writePoints prints a points: section: one point per variable, named by its
// browse path below the start node (letters, digits, _ . - only), its NodeId
// quoted because it holds ; and =.
func writePoints(w io.Writer, nodes []opcua.BrowseNode) {
	fmt.Fprintln(w, "points:")
	used := map[string]int{}
	for _, n := range nodes {
		if n.Class != ua.NodeClassVariable {
			continue
		}
		parts := make([]string, len(n.Path))
		for i, p := range n.Path {
			parts[i] = p.Name
		}
		name := pointName(strings.Join(parts, "."))
		used[name]++
		if k := used[name]; k > 1 {
			name = fmt.Sprintf("%s_%d", name, k)
		}
		fmt.Fprintf(w, "  - name: %s\n    node: %q\n", name, n.NodeID)
		comment := n.DataType
		if n.Rank >= 0 {
			comment += " array: one sample per element, " + name + "[i]"
		}
		fmt.Fprintf(w, "    # %s, now %s\n", comment, oneLine(n.Value))
	}
}

func pointName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	if name == "" {
		name = "point"
	}
	if len(name) > 120 {
		name = name[:120]
	}
	return name
}

func oneLine(s string) string {
	s = strings.NewReplacer("\n", " ", "\r", " ").Replace(s)
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return s
}
