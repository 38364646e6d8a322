package influx

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/weftiot/weft/gateway/internal/series"
)

// Series reads the samples of one point since a time, oldest first, at most
// limit of them (the newest ones), with InfluxQL through the /query
// endpoint, which InfluxDB 1.8 and 2.x (v1 compatibility API) both serve.
func (w *Writer) Series(ctx context.Context, site, agent, device, point string, since time.Time, limit int) ([]series.Point, error) {
	db, rp := SplitBucket(w.opts.Bucket)
	from := w.opts.Measurement
	q := fmt.Sprintf(`SELECT %s, %s, %s, %s, %s FROM %s WHERE site = %s AND agent = %s AND device = %s AND point = %s AND time >= %dms ORDER BY time DESC LIMIT %d`,
		FieldFloat, FieldInt, FieldBool, FieldString, FieldQuality, quoteIdent(from),
		quoteString(site), quoteString(agent), quoteString(device), quoteString(point), since.UnixMilli(), limit)
	v := url.Values{"db": {db}, "q": {q}, "epoch": {"ms"}}
	if rp != "" {
		v.Set("rp", rp)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(w.opts.URL, "/")+"/query?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("influxdb %s: query: %w", w.opts.URL, err)
	}
	if user, pass, ok := strings.Cut(w.opts.Token, ":"); ok {
		req.SetBasicAuth(user, pass)
	} else if w.opts.Token != "" {
		req.Header.Set("Authorization", "Token "+w.opts.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("influxdb %s: query: %w", w.opts.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("influxdb %s: query: read answer: %w", w.opts.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("influxdb %s: query: HTTP %d: %s", w.opts.URL, resp.StatusCode, truncate(string(body), 300))
	}
	var ans struct {
		Results []struct {
			Error  string `json:"error"`
			Series []struct {
				Columns []string `json:"columns"`
				Values  [][]any  `json:"values"`
			} `json:"series"`
		} `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&ans); err != nil {
		return nil, fmt.Errorf("influxdb %s: query: decode answer: %w", w.opts.URL, err)
	}
	var out []series.Point
	for _, res := range ans.Results {
		if res.Error != "" {
			return nil, fmt.Errorf("influxdb %s: query: %s", w.opts.URL, res.Error)
		}
		for _, s := range res.Series {
			for _, row := range s.Values {
				p := series.Point{Quality: "good"}
				for i, col := range s.Columns {
					if i >= len(row) || row[i] == nil {
						continue
					}
					switch col {
					case "time":
						if n, ok := row[i].(json.Number); ok {
							p.TS, _ = n.Int64()
						}
					case FieldFloat, FieldInt:
						if n, ok := row[i].(json.Number); ok {
							if iv, err := n.Int64(); err == nil && col == FieldInt {
								p.Value = iv
							} else if f, err := n.Float64(); err == nil {
								p.Value = f
							}
						}
					case FieldBool, FieldString:
						p.Value = row[i]
					case FieldQuality:
						if q, ok := row[i].(string); ok {
							p.Quality = q
						}
					}
				}
				out = append(out, p)
			}
		}
	}
	// Newest first from the query; the API gives oldest first.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

func quoteString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
