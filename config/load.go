// Package config loads and checks the agent's and the gateway's YAML files.
//
// Loading is strict: an unknown key, a wrong type, a missing required key, a
// bad address, a duplicate id or name, an out-of-range value or an unknown
// profile is an error, and every problem in a file is reported at once, each
// as FILE:LINE:COL: path.to.key: what is wrong; what is allowed. Values may
// come from the environment (${VAR}, ${VAR:-default}) and secrets from files
// (password_file, token_file). Loading never dials a device or a broker.
//
// After a file passes, defaults fill the keys left out (see docs/config.md)
// and each device carries its final points (its profile's, overridden and
// extended by its own) and its protocol.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
)

// LoadAgent reads and checks the agent's config file. A file with problems
// yields Errors; a file that cannot be read, an ordinary error.
func LoadAgent(path string) (*Agent, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read agent config: %w", err)
	}
	return ParseAgent(path, data)
}

// ParseAgent checks an agent config held in memory; name is the file name
// used in messages, and the directory that password_file paths are
// relative to.
func ParseAgent(name string, data []byte) (*Agent, error) {
	return parseAgent(name, data, os.LookupEnv)
}

func parseAgent(name string, data []byte, getenv func(string) (string, bool)) (*Agent, error) {
	var a Agent
	c, ok := parse(name, data, &a, getenv)
	if ok {
		c.agent(&a)
		c.secretFile("mqtt.password_file", a.MQTT.PasswordFile, &a.MQTT.Password)
		for i := range a.Devices {
			if o := a.Devices[i].OPCUA; o != nil {
				c.secretFile(fmt.Sprintf("devices[%d].opcua.password_file", i), o.PasswordFile, &o.Password)
			}
		}
	}
	if err := c.result(); err != nil {
		return nil, err
	}
	c.agentDefaults(&a)
	a.hash = Hash(data)
	return &a, nil
}

// LoadGateway reads and checks the gateway's config file. A file with
// problems yields Errors; a file that cannot be read, an ordinary error.
func LoadGateway(path string) (*Gateway, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read gateway config: %w", err)
	}
	return ParseGateway(path, data)
}

// ParseGateway checks a gateway config held in memory; name is the file name
// used in messages, and the directory that token_file and password_file
// paths are relative to.
func ParseGateway(name string, data []byte) (*Gateway, error) {
	return parseGateway(name, data, os.LookupEnv)
}

func parseGateway(name string, data []byte, getenv func(string) (string, bool)) (*Gateway, error) {
	var g Gateway
	c, ok := parse(name, data, &g, getenv)
	if ok {
		c.gateway(&g)
		c.secretFile("mqtt.password_file", g.MQTT.PasswordFile, &g.MQTT.Password)
		if g.InfluxDB != nil {
			c.secretFile("influxdb.token_file", g.InfluxDB.TokenFile, &g.InfluxDB.Token)
		}
	}
	if err := c.result(); err != nil {
		return nil, err
	}
	gatewayDefaults(&g)
	g.hash = Hash(data)
	return &g, nil
}

// parse decodes data into dst (a pointer to a schema struct), taking ${VAR}
// values from getenv. ok is false when the file is not YAML at all, so that
// the semantic rules are not run on an empty struct.
func parse(name string, data []byte, dst any, getenv func(string) (string, bool)) (c *checker, ok bool) {
	d := newDecoder(name, getenv)
	c = &checker{d: d, dir: filepath.Dir(name)}
	root := d.parse(data)
	if len(d.errs) > 0 {
		return c, false
	}
	if root != nil {
		d.decode(root, reflect.ValueOf(dst).Elem(), "")
	}
	return c, true
}

// result merges the decoder's and the rules' problems. A rule's problem at
// a key the decoder already rejected (or under it) is a consequence of that
// first problem and is dropped: one mistake, one message.
func (c *checker) result() error {
	failed := map[string]bool{}
	for _, e := range c.d.errs {
		failed[e.Path] = true
	}
	for p := range c.d.suggested {
		failed[p] = true
	}
	all := append(Errors(nil), c.d.errs...)
	for _, e := range c.errs {
		if !under(e.Path, failed) {
			all = append(all, e)
		}
	}
	if len(all) == 0 {
		return nil
	}
	return all.sort()
}

// under reports whether path or one of its ancestors is in set.
func under(path string, set map[string]bool) bool {
	for p := path; p != ""; p = parent(p) {
		if set[p] {
			return true
		}
	}
	return false
}

// Hash is the config hash an agent reports: the first 12 hex digits of the
// SHA-256 of the file's bytes.
func Hash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:12]
}

// Hash is the hash of the file the config was loaded from ("" for a config
// built in code).
func (a *Agent) Hash() string { return a.hash }

// Hash is the hash of the file the config was loaded from ("" for a config
// built in code).
func (g *Gateway) Hash() string { return g.hash }

// Summary is the one line `config check` prints for a good file.
func (a *Agent) Summary() string {
	points, disabled := 0, 0
	for _, d := range a.Devices {
		points += len(d.Points)
		if d.Disabled {
			disabled++
		}
	}
	dis := ""
	if disabled > 0 {
		dis = fmt.Sprintf(" (%d disabled)", disabled)
	}
	return fmt.Sprintf("agent %s at site %s: %d %s%s, %d %s, hash %s",
		a.Agent.ID, a.Agent.Site, len(a.Devices), plural(len(a.Devices), "device"), dis, points, plural(points, "point"), a.hash)
}

// Summary is the one line `config check` prints for a good file.
func (g *Gateway) Summary() string {
	store := "no InfluxDB (recent window only)"
	if g.InfluxDB != nil {
		store = "InfluxDB " + g.InfluxDB.URL + " bucket " + g.InfluxDB.Bucket
	}
	data := "data not shared (every gateway stores all)"
	if g.MQTT.SharedGroup != "" {
		data = "data shared in group " + g.MQTT.SharedGroup
	}
	return fmt.Sprintf("gateway %s: broker %s, %s, %s, %d admin and %d read %s, hash %s",
		g.Gateway.ID, g.MQTT.Broker, data, store, len(g.Auth.AdminTokens), len(g.Auth.ReadTokens), plural(len(g.Auth.ReadTokens), "token"), g.hash)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// AsErrors returns the problems of a load error, or nil when err is not a
// list of problems in the file (for example the file could not be read).
func AsErrors(err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	return nil
}
