package config

import (
	"fmt"
	"net/url"
	"strconv"
)

func (c *checker) gateway(g *Gateway) {
	c.name("gateway.id", g.Gateway.ID, false, "the gateway an id")
	if c.set("gateway.data_dir") && g.Gateway.DataDir == "" {
		c.bad("gateway.data_dir", "is empty; allowed a directory path like /var/lib/weft-gateway (leave the key out for that default)")
	}
	c.hostPort("gateway.http", g.Gateway.HTTP, "127.0.0.1:8080")
	c.hostPort("gateway.embedded_listen", g.Gateway.EmbeddedListen, "127.0.0.1:1883")
	if g.Gateway.EmbeddedListen != "" && g.MQTT.Broker != "embedded" && g.MQTT.Broker != "" {
		c.badKey("gateway.embedded_listen", "is set but mqtt.broker is %s, not embedded; remove it or set mqtt.broker: embedded", redactURL(g.MQTT.Broker))
	}

	c.mqtt(&g.MQTT, true)

	if in := g.InfluxDB; in != nil {
		switch u, err := url.Parse(in.URL); {
		case in.URL == "":
			c.bad("influxdb.url", "missing; allowed http://host:port or https://host:port, like http://127.0.0.1:8086")
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "":
			c.bad("influxdb.url", "%q is not an http:// or https:// URL with a host; allowed a URL like http://127.0.0.1:8086", redactURL(in.URL))
		default:
			if p := u.Port(); p != "" {
				if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
					c.bad("influxdb.url", "port %q is out of range; allowed 1..65535", p)
				}
			}
		}
		if in.Bucket == "" {
			c.bad("influxdb.bucket", "missing; allowed a bucket name, or db/rp for InfluxDB 1.8 (like weft/autogen)")
		}
		if in.Token != "" && in.TokenFile != "" {
			c.bad("influxdb.token_file", "both token and token_file are set; keep one")
		}
		if in.Measurement != "" || c.set("influxdb.measurement") {
			c.name("influxdb.measurement", in.Measurement, true, "the measurement a name")
		}
		if c.set("influxdb.batch_size") && (in.BatchSize < 1 || in.BatchSize > 100_000) {
			c.bad("influxdb.batch_size", "%d is out of range; allowed 1..100000", in.BatchSize)
		}
		c.interval("influxdb.flush_interval", in.FlushInterval)
	}

	seen := map[string]string{}
	for kind, tokens := range map[string][]string{"admin_tokens": g.Auth.AdminTokens, "read_tokens": g.Auth.ReadTokens} {
		for i, t := range tokens {
			tp := fmt.Sprintf("auth.%s[%d]", kind, i)
			switch {
			case len(t) < 16:
				c.bad(tp, "a token of %d characters is too easy to guess; allowed 16 characters or more", len(t))
			case seen[t] != "":
				c.bad(tp, "the same token is also at %s; each token must be different", seen[t])
			default:
				seen[t] = tp
			}
		}
	}

	c.interval("alerts.offline_after", g.Alerts.OfflineAfter)
	c.interval("alerts.backlog_age_after", g.Alerts.BacklogAgeAfter)
}
