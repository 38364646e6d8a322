package testservers

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
)

// writePoint writes one point the way the gateway does: influxdb-client-go
// against /api/v2/write with bucket "weft/autogen".
func writePoint(t *testing.T, db *InfluxDB, device string, v float64, ts time.Time) {
	t.Helper()
	c := influxdb2.NewClient(db.URL, db.Token)
	defer c.Close()
	p := influxdb2.NewPoint("dye", map[string]string{"device": device}, map[string]any{"bath_temp": v}, ts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.WriteAPIBlocking("", db.Bucket).WritePoint(ctx, p); err != nil {
		t.Fatalf("write through /api/v2/write bucket %s: %v", db.Bucket, err)
	}
}

func TestInfluxWriteQueryRestart(t *testing.T) {
	db := Influx(t)
	if db.Bucket != "weft/autogen" || db.DB != "weft" || !strings.HasPrefix(db.URL, "http://127.0.0.1:") {
		t.Fatalf("Influx = %+v", db)
	}
	ts := time.UnixMilli(1732540800123)
	writePoint(t, db, "dye-01", 85.2, ts)

	check := func(when string) {
		t.Helper()
		s := db.Query(t, `SELECT "bath_temp" FROM "dye" WHERE "device" = 'dye-01'`)
		if len(s) != 1 || len(s[0].Values) != 1 {
			t.Fatalf("%s: query gave %+v, want one row", when, s)
		}
		row := s[0].Values[0]
		tm, _ := row[s[0].Column("time")].(json.Number).Int64()
		v, _ := row[s[0].Column("bath_temp")].(json.Number).Float64()
		if tm != ts.UnixMilli() || v != 85.2 {
			t.Fatalf("%s: row %v, want time %d value 85.2", when, row, ts.UnixMilli())
		}
	}
	check("after the write")

	// Same point again: InfluxDB keeps one (at-least-once delivery relies on it).
	writePoint(t, db, "dye-01", 85.2, ts)
	check("after writing the same point twice")

	url := db.URL
	db.Stop()
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "http://"), time.Second); err == nil {
		t.Fatal("influxd still accepts connections after Stop")
	}
	db.Start()
	if db.URL != url {
		t.Fatalf("URL changed over a restart: %s -> %s", url, db.URL)
	}
	check("after a restart")
}

func TestInfluxQueryError(t *testing.T) {
	db := Influx(t)
	if _, err := db.QueryErr(`SELEC nonsense`); err == nil || !strings.Contains(err.Error(), "error parsing query") {
		t.Fatalf("a bad statement gave %v, want the parse error", err)
	}
	if s := db.Query(t, `SHOW DATABASES`); len(s) != 1 || !strings.Contains(strings.TrimSpace(jsonOf(s)), `"weft"`) {
		t.Fatalf("SHOW DATABASES = %s, want weft in it", jsonOf(s))
	}
}

func jsonOf(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestInfluxAuth(t *testing.T) {
	db := Influx(t, WithInfluxAuth("weft", "s3cr'et"))
	if db.Token != "weft:s3cr'et" {
		t.Fatalf("Token = %q", db.Token)
	}
	writePoint(t, db, "dye-02", 1.5, time.UnixMilli(1000))
	if s := db.Query(t, `SELECT * FROM "dye"`); len(s) != 1 || len(s[0].Values) != 1 {
		t.Fatalf("query with auth: %+v", s)
	}
	c := influxdb2.NewClient(db.URL, "weft:wrong")
	defer c.Close()
	err := c.WriteAPIBlocking("", db.Bucket).WritePoint(context.Background(),
		influxdb2.NewPoint("dye", nil, map[string]any{"x": 1.0}, time.UnixMilli(2000)))
	if err == nil {
		t.Fatal("a write with a wrong token was accepted")
	}
	db.Stop()
	db.Start() // the user survives a restart
	if s := db.Query(t, `SELECT * FROM "dye"`); len(s) != 1 || len(s[0].Values) != 1 {
		t.Fatalf("query after restart: %+v", s)
	}
}
