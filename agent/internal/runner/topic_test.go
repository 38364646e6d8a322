package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/weftiot/weft/wire"
)

// Issue 6: commands are accepted only on the agent's own topic. The
// broker's ACL and the agent's subscription keep other agents' commands
// away (deploy/mosquitto_test.go); the agent refuses them itself as well,
// should one arrive (a broker without the ACL, a wildcard left in a
// bridge): a valid config command on another agent's, another site's or
// another prefix's topic changes nothing and counts as an error.
func TestCommandOnAnotherTopicRefused(t *testing.T) {
	sim := startSim(t, 1)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	orig := agentConfig(filepath.Join(dir, "data"), "tcp://127.0.0.1:1", sim.Addr(), 1, "")
	os.WriteFile(path, []byte(orig), 0o644)
	a, _ := startAgent(t, testOptions(path))
	_, hash := a.Config()

	next := agentConfig(filepath.Join(dir, "data"), "tcp://127.0.0.1:1", sim.Addr(), 1, "  # changed\n")
	payload, _ := json.Marshal(wire.Command{V: wire.Version, ID: "x1", Name: wire.CmdConfig, Config: next})
	for _, topic := range []string{
		wire.Topics{Prefix: "weft/v1"}.Cmd(testSite, "a2", wire.CmdConfig),
		wire.Topics{Prefix: "weft/v1"}.Cmd("other-site", "a1", wire.CmdConfig),
		wire.Topics{Prefix: "elsewhere/v1"}.Cmd(testSite, "a1", wire.CmdConfig),
		wire.Topics{Prefix: "weft/v1"}.Reply(testSite, "a1", "x1"),
	} {
		before := a.cmdErrors.Load()
		a.handle(context.Background(), cmdMsg{topic: topic, payload: payload})
		if _, h := a.Config(); h != hash {
			t.Fatalf("a config command on %s was applied", topic)
		}
		if a.cmdErrors.Load() != before+1 {
			t.Errorf("a command on %s was not counted as refused", topic)
		}
	}
	if b, _ := os.ReadFile(path); string(b) != orig {
		t.Error("a command on another topic rewrote the config file")
	}
	// The same command on the agent's own topic is applied: the refusals
	// above were for the topic, not the command.
	a.handle(context.Background(), cmdMsg{topic: wire.Topics{Prefix: "weft/v1"}.Cmd(testSite, "a1", wire.CmdConfig), payload: payload})
	if _, h := a.Config(); h == hash {
		t.Error("the config command on the agent's own topic was not applied")
	}
}
