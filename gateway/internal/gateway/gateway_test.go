package gateway

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/internal/testservers"
	"github.com/weftiot/weft/wire"
)

// TestIngestSchemaReplayGarbage publishes batches as an agent would through
// a real Mosquitto and checks what lands in a real influxd: measurement,
// tags, typed fields, source times; a replayed batch adds nothing; garbage
// and a batch claiming another agent are counted and ingest goes on.
func TestIngestSchemaReplayGarbage(t *testing.T) {
	mq := testservers.Mosquitto(t)
	db := testservers.Influx(t)
	g := startGateway(t, gatewayYAML(t, "gw-a", t.TempDir(), mq.URL, db, ""))
	ag := agentClient(t, mq.URL, "dye-01-gw")
	site := "weihai"

	publish(t, ag, topics.Status(site, "dye-01-gw"), statusMsg(site, "dye-01-gw", wire.Online), true)
	ts := time.Now().Add(-time.Minute).UnixMilli()
	b := &wire.Batch{Site: site, Agent: "dye-01-gw", Seq: 1, Samples: []wire.Sample{
		{Device: "dye-01", Point: "bath_temp", Value: wire.FloatValue(85.25), TS: ts},
		{Device: "dye-01", Point: "cycles", Value: wire.IntValue(-42), TS: ts + 1},
		{Device: "dye-01", Point: "counter", Value: wire.UintValue(7), TS: ts + 2},
		{Device: "dye-01", Point: "running", Value: wire.BoolValue(true), TS: ts + 3},
		{Device: "dye-01", Point: "recipe", Value: wire.StringValue(`blue "navy", 3\4`), TS: ts + 4},
		{Device: "dye-01", Point: "level", Value: wire.FloatValue(1.5), Quality: wire.Uncertain, TS: ts + 5},
		{Device: "dye-01", Point: "pressure", Quality: wire.Bad, Code: 0x80340000, TS: ts + 6},
		{Device: "dye 02,x", Point: "a=b", Value: wire.FloatValue(2), TS: ts + 7},
	}}
	payload := wire.AppendBatch(nil, b)
	publish(t, ag, topics.Data(site, "dye-01-gw"), payload, false)

	waitFor(t, 20*time.Second, "the first batch in InfluxDB", func() bool {
		return countValues(t, db, "value", "") == 3 && countValues(t, db, "quality", "") == 2
	})

	rows := db.Query(t, `SELECT * FROM "weft" GROUP BY * ORDER BY time`)
	got := map[string]map[string]any{}
	for _, s := range rows {
		if s.Name != "weft" || s.Tags["site"] != site || s.Tags["agent"] != "dye-01-gw" {
			t.Errorf("series %s tags %v: want measurement weft, site %s, agent dye-01-gw", s.Name, s.Tags, site)
		}
		for _, v := range s.Values {
			fields := map[string]any{}
			for i, c := range s.Columns {
				if v[i] != nil {
					fields[c] = v[i]
				}
			}
			got[s.Tags["device"]+"/"+s.Tags["point"]] = fields
		}
	}
	want := map[string]map[string]string{
		"dye-01/bath_temp": {"time": fmt.Sprint(ts), "value": "85.25"},
		"dye-01/cycles":    {"time": fmt.Sprint(ts + 1), "value_int": "-42"},
		"dye-01/counter":   {"time": fmt.Sprint(ts + 2), "value_int": "7"},
		"dye-01/running":   {"time": fmt.Sprint(ts + 3), "value_bool": "true"},
		"dye-01/recipe":    {"time": fmt.Sprint(ts + 4), "value_str": `blue "navy", 3\4`},
		"dye-01/level":     {"time": fmt.Sprint(ts + 5), "value": "1.5", "quality": "uncertain"},
		"dye-01/pressure":  {"time": fmt.Sprint(ts + 6), "quality": "bad", "code": fmt.Sprint(0x80340000)},
		"dye 02,x/a=b":     {"time": fmt.Sprint(ts + 7), "value": "2"},
	}
	for k, fields := range want {
		row, ok := got[k]
		if !ok {
			t.Errorf("no row for %s; rows: %v", k, got)
			continue
		}
		for f, v := range fields {
			if fmt.Sprint(row[f]) != v {
				t.Errorf("%s: field %s = %v, want %s", k, f, row[f], v)
			}
		}
		for f := range row {
			if _, ok := fields[f]; !ok && f != "agent" && f != "device" && f != "point" && f != "site" {
				t.Errorf("%s: unexpected field %s = %v", k, f, row[f])
			}
		}
	}

	// Replay: the same batch again stores nothing new and counts a duplicate.
	publish(t, ag, topics.Data(site, "dye-01-gw"), payload, false)
	// Garbage, a wrong version, and a batch claiming another agent.
	publish(t, ag, topics.Data(site, "dye-01-gw"), []byte("not json"), false)
	publish(t, ag, topics.Data(site, "dye-01-gw"), []byte(`{"v":99}`), false)
	other := floatBatch(site, "someone-else", 1, 5, 5, ts)
	publish(t, ag, topics.Data(site, "dye-01-gw"), wire.AppendBatch(nil, other), false)
	// And a good batch after all that.
	publish(t, ag, topics.Data(site, "dye-01-gw"), wire.AppendBatch(nil, floatBatch(site, "dye-01-gw", 2, 10, 10, ts+100)), false)

	waitFor(t, 20*time.Second, "the batch after the garbage", func() bool { return countValues(t, db, "value", "") == 13 })
	waitFor(t, 10*time.Second, "rejections counted", func() bool {
		return metric(t, g, `weft_gateway_messages_total{outcome="malformed"}`) == 1 &&
			metric(t, g, `weft_gateway_messages_total{outcome="version"}`) == 1 &&
			metric(t, g, `weft_gateway_messages_total{outcome="mismatch"}`) == 1 &&
			metric(t, g, `weft_gateway_messages_total{outcome="stored"}`) == 3
	})
	if n := countValues(t, db, "value", `agent = 'someone-else'`); n != 0 {
		t.Errorf("a batch claiming another agent was stored: %d points", n)
	}
	if n := metric(t, g, `weft_gateway_batches_total{seq="duplicate"}`); n != 1 {
		t.Errorf("duplicates counted %v, want 1", n)
	}
	if n := metric(t, g, `weft_gateway_pending_messages`); n != 0 {
		t.Errorf("pending messages %v after everything was stored, want 0", n)
	}

	// The API sees the agent, its latest values and its sequence figures.
	var one struct {
		Agent  registry.Agent    `json:"agent"`
		Latest []registry.Latest `json:"latest"`
	}
	if st := apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/dye-01-gw", readToken, "", &one); st != 200 {
		t.Fatalf("GET agent: HTTP %d", st)
	}
	if one.Agent.State != "online" || one.Agent.Version != "test" || one.Agent.Seq.Last != 2 || one.Agent.Seq.Duplicates != 1 {
		t.Errorf("agent = %+v; want online, version test, seq last 2, 1 duplicate", one.Agent)
	}
	if len(one.Latest) != 18 {
		t.Errorf("latest values: %d, want 18 points", len(one.Latest))
	}
	var ser struct {
		Samples []struct {
			TS    int64 `json:"ts"`
			Value any   `json:"value"`
		} `json:"samples"`
	}
	if st := apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/dye-01-gw/series?device=dye-01&point=bath_temp&since=1h", readToken, "", &ser); st != 200 {
		t.Fatalf("GET series: HTTP %d", st)
	}
	if len(ser.Samples) != 1 || ser.Samples[0].TS != ts || ser.Samples[0].Value != 85.25 {
		t.Errorf("series = %+v, want one sample 85.25 at %d", ser.Samples, ts)
	}
}

// TestAPIAuth checks tokens: 401 without or with an unknown token, 403 for
// a read token on a POST, /healthz open.
func TestAPIAuth(t *testing.T) {
	mq := testservers.Mosquitto(t)
	g := startGateway(t, gatewayYAML(t, "gw-auth", t.TempDir(), mq.URL, nil, ""))
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	cases := []struct {
		method, path, token string
		status              int
		code                string
	}{
		{"GET", "/api/v1/agents", "", 401, "unauthorized"},
		{"GET", "/api/v1/agents", "wrong-token-0123456789", 401, "unauthorized"},
		{"GET", "/api/v1/agents", readToken, 200, ""},
		{"GET", "/api/v1/alerts", adminToken, 200, ""},
		{"GET", "/metrics", "", 401, "unauthorized"},
		{"POST", "/api/v1/agents/s/a/config", readToken, 403, "forbidden"},
		{"POST", "/api/v1/agents/s/a/status", "", 401, "unauthorized"},
		{"POST", "/api/v1/agents/s/a/status", adminToken, 404, "not_found"},
		{"GET", "/api/v1/agents/s/a", readToken, 404, "not_found"},
		{"GET", "/api/v1/nothing", readToken, 404, "not_found"},
	}
	for _, c := range cases {
		e.Error.Code = ""
		var v any = &e
		if c.code == "" {
			v = nil
		}
		if st := apiDo(t, c.method, g.HTTP+c.path, c.token, "x", v); st != c.status || e.Error.Code != c.code {
			t.Errorf("%s %s token %q: HTTP %d code %q, want %d %q", c.method, c.path, c.token, st, e.Error.Code, c.status, c.code)
		}
	}
	waitFor(t, 10*time.Second, "healthz ok", func() bool {
		var h map[string]string
		return apiDo(t, "GET", g.HTTP+"/healthz", "", "", &h) == 200 && h["status"] == "ok"
	})
}

// TestConfigPushAndStatus pushes a config through the API to an agent
// responder (a paho client answering as the agent's command handler does)
// and asks for its status.
func TestConfigPushAndStatus(t *testing.T) {
	mq := testservers.Mosquitto(t)
	g := startGateway(t, gatewayYAML(t, "gw-cmd", t.TempDir(), mq.URL, nil, ""))
	site, id := "weihai", "loom-07"
	ag := agentClient(t, mq.URL, id)
	// The responder: config "bad" is refused with problems, anything else applied.
	tok := ag.Subscribe(topics.CmdWildcard(site, id), 1, func(c mqtt.Client, m mqtt.Message) {
		var cmd wire.Command
		if err := wire.DecodeCommand(m.Payload(), &cmd); err != nil {
			t.Errorf("agent got a bad command: %v", err)
			return
		}
		r := wire.Reply{V: 1, ID: cmd.ID, OK: true, TS: time.Now().UnixMilli()}
		switch cmd.Name {
		case wire.CmdConfig:
			if cmd.Config == "bad\n" {
				r.OK, r.Error, r.Errors = false, "config has 1 problem", []string{"agent.yaml:1:1: agent: missing"}
			} else {
				r.ConfigHash = "hash-" + fmt.Sprint(len(cmd.Config))
			}
		case wire.CmdStatus:
			r.Health = &wire.Health{V: 1, Site: site, Agent: id, TS: time.Now().UnixMilli(), UptimeS: 99,
				Spool:   wire.SpoolHealth{Batches: 3, Samples: 300, OldestAgeMs: 1500},
				Devices: []wire.DeviceHealth{{ID: "loom", Protocol: "modbus", State: wire.DeviceOK, Reads: 10}}}
		}
		data, _ := json.Marshal(r)
		c.Publish(topics.Reply(site, id, cmd.ID), 1, false, data)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	publish(t, ag, topics.Status(site, id), statusMsg(site, id, wire.Online), true)
	waitFor(t, 10*time.Second, "agent known and gateway connected", func() bool {
		var a struct{ Agent registry.Agent }
		var h map[string]string
		return apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/loom-07", readToken, "", &a) == 200 && a.Agent.State == "online" &&
			apiDo(t, "GET", g.HTTP+"/healthz", "", "", &h) == 200
	})

	var ok struct{ Reply wire.Reply }
	if st := apiDo(t, "POST", g.HTTP+"/api/v1/agents/weihai/loom-07/config", adminToken, "agent: {id: loom-07}\n", &ok); st != 200 || !ok.Reply.OK || ok.Reply.ConfigHash != "hash-21" {
		t.Fatalf("push config: HTTP %d reply %+v", st, ok.Reply)
	}
	var bad struct {
		Error struct {
			Code    string   `json:"code"`
			Details []string `json:"details"`
		} `json:"error"`
	}
	if st := apiDo(t, "POST", g.HTTP+"/api/v1/agents/weihai/loom-07/config", adminToken, "bad\n", &bad); st != 422 || bad.Error.Code != "config_rejected" || len(bad.Error.Details) != 1 {
		t.Fatalf("push bad config: HTTP %d %+v", st, bad)
	}
	var sr struct{ Reply wire.Reply }
	if st := apiDo(t, "POST", g.HTTP+"/api/v1/agents/weihai/loom-07/status", adminToken, "", &sr); st != 200 || sr.Reply.Health == nil {
		t.Fatalf("status: HTTP %d %+v", st, sr)
	}
	var a struct{ Agent registry.Agent }
	apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/loom-07", readToken, "", &a)
	if a.Agent.PushedConfigHash != "hash-21" || a.Agent.Backlog.Samples != 300 || len(a.Agent.Devices) != 1 || a.Agent.UptimeS != 99 {
		t.Errorf("agent after push and status: %+v", a.Agent)
	}

	// An agent that does not answer: 504 after the timeout.
	publish(t, ag, topics.Status(site, "mute"), statusMsg(site, "mute", wire.Online), true)
	waitFor(t, 10*time.Second, "mute agent known", func() bool {
		return apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/mute", readToken, "", nil) == 200
	})
	var e struct{ Error struct{ Code string } }
	if st := apiDo(t, "POST", g.HTTP+"/api/v1/agents/weihai/mute/status?timeout=300ms", adminToken, "", &e); st != 504 || e.Error.Code != "agent_timeout" {
		t.Errorf("silent agent: HTTP %d %+v, want 504 agent_timeout", st, e)
	}
	// An offline agent: 409.
	publish(t, ag, topics.Status(site, "gone"), statusMsg(site, "gone", wire.Offline), true)
	waitFor(t, 10*time.Second, "offline agent known", func() bool {
		return apiDo(t, "GET", g.HTTP+"/api/v1/agents/weihai/gone", readToken, "", nil) == 200
	})
	if st := apiDo(t, "POST", g.HTTP+"/api/v1/agents/weihai/gone/config", adminToken, "x: 1\n", &e); st != 409 || e.Error.Code != "agent_offline" {
		t.Errorf("offline agent: HTTP %d %+v, want 409 agent_offline", st, e)
	}
}
