package config

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/goccy/go-yaml"
)

// CheckSecrets refuses secrets that every user of the box can read: a TLS
// or OPC UA private key file, or a password file, that is world-readable,
// and a password written literally in a world-readable config file. The
// agent's `run` calls it after LoadAgent and does not start while it
// returns errors; each error names the file, the key and the fix.
//
// Each file is looked up the way the code that opens it does: password_file
// relative to cfgPath's directory (as the loader reads it), mqtt.tls.key and
// opcua private_key as written (the forwarder and the OPC UA driver open
// them relative to the working directory). A file that does not exist is
// not its business (the link that needs it reports that). docs/security.md
// explains the rules.
func CheckSecrets(cfgPath string, cfg *Agent) []error {
	s := secrets{cfg: cfgPath, dir: filepath.Dir(cfgPath)}
	s.keyFile("mqtt.tls.key", cfg.MQTT.TLS.Key, false)
	s.keyFile("mqtt.password_file", cfg.MQTT.PasswordFile, true)
	for i, d := range cfg.Devices {
		if d.OPCUA == nil {
			continue
		}
		s.keyFile(fmt.Sprintf("devices[%d].opcua.private_key", i), d.OPCUA.PrivateKey, false)
		s.keyFile(fmt.Sprintf("devices[%d].opcua.password_file", i), d.OPCUA.PasswordFile, true)
	}
	s.literals(cfgPath, func(data []byte) ([]literal, error) {
		var raw struct {
			MQTT struct {
				Password string `yaml:"password"`
			} `yaml:"mqtt"`
			Devices []struct {
				OPCUA *struct {
					Password string `yaml:"password"`
				} `yaml:"opcua"`
			} `yaml:"devices"`
		}
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, err
		}
		lits := []literal{{"mqtt.password", raw.MQTT.Password, "mqtt.password_file"}}
		for i, d := range raw.Devices {
			if d.OPCUA != nil {
				lits = append(lits, literal{fmt.Sprintf("devices[%d].opcua.password", i), d.OPCUA.Password,
					fmt.Sprintf("devices[%d].opcua.password_file", i)})
			}
		}
		return lits, nil
	})
	return s.errs
}

// CheckGatewaySecrets is CheckSecrets for the gateway's file: the MQTT key
// and password, the InfluxDB token and the API tokens.
func CheckGatewaySecrets(cfgPath string, cfg *Gateway) []error {
	s := secrets{cfg: cfgPath, dir: filepath.Dir(cfgPath)}
	s.keyFile("mqtt.tls.key", cfg.MQTT.TLS.Key, false)
	s.keyFile("mqtt.password_file", cfg.MQTT.PasswordFile, true)
	if cfg.InfluxDB != nil {
		s.keyFile("influxdb.token_file", cfg.InfluxDB.TokenFile, true)
	}
	s.literals(cfgPath, func(data []byte) ([]literal, error) {
		var raw struct {
			MQTT struct {
				Password string `yaml:"password"`
			} `yaml:"mqtt"`
			InfluxDB struct {
				Token string `yaml:"token"`
			} `yaml:"influxdb"`
			Auth struct {
				AdminTokens []string `yaml:"admin_tokens"`
				ReadTokens  []string `yaml:"read_tokens"`
			} `yaml:"auth"`
		}
		if err := yaml.Unmarshal(data, &raw); err != nil {
			return nil, err
		}
		lits := []literal{
			{"mqtt.password", raw.MQTT.Password, "mqtt.password_file"},
			{"influxdb.token", raw.InfluxDB.Token, "influxdb.token_file"},
		}
		for i, tok := range raw.Auth.AdminTokens {
			lits = append(lits, literal{fmt.Sprintf("auth.admin_tokens[%d]", i), tok, ""})
		}
		for i, tok := range raw.Auth.ReadTokens {
			lits = append(lits, literal{fmt.Sprintf("auth.read_tokens[%d]", i), tok, ""})
		}
		return lits, nil
	})
	return s.errs
}

// secrets collects the problems of one config.
type secrets struct {
	cfg, dir string
	errs     []error
}

// literal is a secret-holding key as written in the file.
type literal struct {
	key, value string
	fileKey    string // the key that reads it from a file instead; "" if none
}

// worldReadable reports whether others (not owner, not group) may read the
// file at path, and its mode. A missing file is not readable.
func worldReadable(path string) (bool, fs.FileMode) {
	st, err := os.Stat(path)
	if err != nil {
		return false, 0
	}
	return st.Mode().Perm()&0o004 != 0, st.Mode().Perm()
}

// keyFile checks a file that holds a private key or a password; a relative
// path is taken from the config's directory when fromConfigDir is set, else
// from the working directory.
func (s *secrets) keyFile(key, file string, fromConfigDir bool) {
	if file == "" {
		return
	}
	if fromConfigDir && !filepath.IsAbs(file) {
		file = filepath.Join(s.dir, file)
	}
	if open, mode := worldReadable(file); open {
		s.errs = append(s.errs, fmt.Errorf("%s: %s: %s holds a secret and is readable by every user of this box (mode %04o); fix: chmod 600 %s (owned by the user the service runs as)",
			s.cfg, key, file, mode, file))
	}
}

// literals checks the secrets written in the config file itself, when
// every user of the box can read that file. A value that is a ${VAR}
// reference is not a secret in the file.
func (s *secrets) literals(cfgPath string, parse func([]byte) ([]literal, error)) {
	open, mode := worldReadable(cfgPath)
	if !open {
		return
	}
	data, err := os.ReadFile(cfgPath)
	if err != nil {
		return
	}
	lits, err := parse(data)
	if err != nil {
		// LoadAgent has accepted this file; a file goccy cannot read
		// the same way is checked by the stricter loader, not here.
		return
	}
	for _, l := range lits {
		if l.value == "" || isEnvRef(l.value) {
			continue
		}
		alt := "${ENV_VAR}"
		if l.fileKey != "" {
			alt = l.fileKey + " (a file of mode 600) or ${ENV_VAR}"
		}
		s.errs = append(s.errs, fmt.Errorf("%s: %s: a secret written in a file readable by every user of this box (mode %04o); fix: chmod 640 %s (group of the service user), or use %s instead",
			cfgPath, l.key, mode, cfgPath, alt))
	}
}

// isEnvRef reports whether a value is only a ${VAR} or ${VAR:-default}
// reference: the secret is in the environment, not in the file. A default
// written after :- is itself a literal secret, so it does not count.
func isEnvRef(v string) bool {
	v = strings.TrimSpace(v)
	if !strings.HasPrefix(v, "${") || !strings.HasSuffix(v, "}") || strings.Count(v, "${") != 1 {
		return false
	}
	name, def, hasDef := strings.Cut(v[2:len(v)-1], ":-")
	return validEnvName(name) && (!hasDef || def == "")
}
