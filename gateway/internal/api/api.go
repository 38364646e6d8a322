// Package api is the gateway's HTTP API: the fleet, its alerts, recent
// series, config and status commands, health and metrics. All routing of the
// gateway's HTTP listener is here; the dashboard mounts its handler with
// Server.Mount. docs/api.md is the reference.
package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/weftiot/weft/gateway/internal/registry"
	"github.com/weftiot/weft/gateway/internal/series"
	"github.com/weftiot/weft/wire"
)

// Commander sends a command to an agent and waits for its reply.
type Commander interface {
	Command(ctx context.Context, site, agent string, c wire.Command) (wire.Reply, error)
}

// Options configure the Server.
type Options struct {
	Registry  *registry.Registry
	Series    series.Source // nil: no series endpoint data
	Commander Commander
	// AdminTokens may read and POST; ReadTokens may only read. Empty
	// strings are ignored.
	AdminTokens []string
	ReadTokens  []string
	Gatherer    prometheus.Gatherer
	// Ready reports problems that make the gateway unhealthy (no broker).
	Ready func() error
	// CommandTimeout is the default wait for an agent's reply (30s).
	CommandTimeout time.Duration
	Log            *slog.Logger
}

// Server routes the gateway's HTTP requests.
type Server struct {
	o     Options
	mux   *http.ServeMux
	log   *slog.Logger
	cmdID atomic.Uint64
	start int64
}

// MaxConfigBytes is the largest config a POST may carry.
const MaxConfigBytes = wire.MaxCommandBytes - 64<<10

// New makes the Server with every API route.
func New(o Options) *Server {
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = 30 * time.Second
	}
	s := &Server{o: o, mux: http.NewServeMux(), log: o.Log.With("component", "api"), start: time.Now().UnixNano()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.Handle("GET /metrics", s.Auth(false, promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{})))
	s.mux.Handle("GET /api/v1/agents", s.Auth(false, http.HandlerFunc(s.agents)))
	s.mux.Handle("GET /api/v1/agents/{site}/{agent}", s.Auth(false, http.HandlerFunc(s.agent)))
	s.mux.Handle("GET /api/v1/agents/{site}/{agent}/series", s.Auth(false, http.HandlerFunc(s.series)))
	s.mux.Handle("POST /api/v1/agents/{site}/{agent}/config", s.Auth(true, http.HandlerFunc(s.pushConfig)))
	s.mux.Handle("POST /api/v1/agents/{site}/{agent}/status", s.Auth(true, http.HandlerFunc(s.askStatus)))
	s.mux.Handle("GET /api/v1/alerts", s.Auth(false, http.HandlerFunc(s.alerts)))
	s.mux.Handle("/api/", s.Auth(false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Error(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API route %s %s", r.Method, r.URL.Path))
	})))
	return s
}

// Handler is the handler to serve.
func (s *Server) Handler() http.Handler { return s.mux }

// Registry is the fleet registry the API serves (the dashboard samples it).
func (s *Server) Registry() *registry.Registry { return s.o.Registry }

// Mount adds a handler (the dashboard) under a pattern of http.ServeMux.
// It is served as is: wrap it with Auth where it needs a token.
func (s *Server) Mount(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Auth wraps h so that it needs a token: any token for reads, an admin token
// when admin is true. It answers 401 without a known token and 403 for a
// read token on an admin route.
func (s *Server) Auth(admin bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft-gateway"`)
			Error(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer TOKEN with a read or admin token from the gateway's auth section")
			return
		}
		switch {
		case match(tok, s.o.AdminTokens):
		case match(tok, s.o.ReadTokens):
			if admin {
				Error(w, http.StatusForbidden, "forbidden", "this token may only read; "+r.Method+" "+r.URL.Path+" needs an admin token")
				return
			}
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="weft-gateway", error="invalid_token"`)
			Error(w, http.StatusUnauthorized, "unauthorized", "unknown token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

func match(tok string, list []string) bool {
	found := false
	for _, t := range list {
		if t != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
			found = true
		}
	}
	return found
}

// Error writes a JSON error: {"error": {"code": "...", "message": "..."}}.
func Error(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.o.Ready != nil {
		if err := s.o.Ready(); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unhealthy", "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) agents(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"agents": s.o.Registry.Agents()})
}

func (s *Server) agent(w http.ResponseWriter, r *http.Request) {
	site, id := r.PathValue("site"), r.PathValue("agent")
	a, latest, ok := s.o.Registry.Get(site, id)
	if !ok {
		Error(w, http.StatusNotFound, "not_found", fmt.Sprintf("no agent %s/%s", site, id))
		return
	}
	if latest == nil {
		latest = []registry.Latest{}
	}
	alerts := s.o.Registry.AgentAlerts(site, id)
	if alerts == nil {
		alerts = []registry.Alert{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"agent": a, "latest": latest, "alerts": alerts})
}

func (s *Server) series(w http.ResponseWriter, r *http.Request) {
	site, id := r.PathValue("site"), r.PathValue("agent")
	q := r.URL.Query()
	device, point := q.Get("device"), q.Get("point")
	if device == "" || point == "" {
		Error(w, http.StatusBadRequest, "bad_request", "device and point are required: ?device=dye-01&point=bath_temp")
		return
	}
	since, err := parseSince(q.Get("since"), time.Now())
	if err != nil {
		Error(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	limit := 1000
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			Error(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("limit %q: want a number from 1 to 10000", l))
			return
		}
		limit = n
	}
	if s.o.Series == nil {
		Error(w, http.StatusServiceUnavailable, "no_store", "this gateway keeps no series")
		return
	}
	pts, err := s.o.Series.Series(r.Context(), site, id, device, point, since, limit)
	if err != nil {
		s.log.Warn("series query failed", "site", site, "agent", id, "device", device, "point", point, "error", err)
		Error(w, http.StatusBadGateway, "store_unavailable", err.Error())
		return
	}
	if pts == nil {
		pts = []series.Point{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"site": site, "agent": id, "device": device, "point": point,
		"since": since.UnixMilli(), "samples": pts})
}

// parseSince reads since= as a duration before now ("15m"), RFC 3339, or
// ms since the epoch; empty means one hour ago.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return now.Add(-time.Hour), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil && ms >= 0 {
		return time.UnixMilli(ms), nil
	}
	return time.Time{}, fmt.Errorf("since %q: want a duration before now (15m, 2h), an RFC 3339 time or ms since the epoch", v)
}

func (s *Server) alerts(w http.ResponseWriter, r *http.Request) {
	history := r.URL.Query().Get("history")
	all := history == "1" || history == "true"
	writeJSON(w, http.StatusOK, map[string]any{"alerts": s.o.Registry.Alerts(all, 500)})
}

// command sends c to the agent of the request and writes the reply or the
// error. It returns the reply when there is one.
func (s *Server) command(w http.ResponseWriter, r *http.Request, c wire.Command) (wire.Reply, bool) {
	site, id := r.PathValue("site"), r.PathValue("agent")
	a, _, ok := s.o.Registry.Get(site, id)
	if !ok {
		Error(w, http.StatusNotFound, "not_found", fmt.Sprintf("no agent %s/%s", site, id))
		return wire.Reply{}, false
	}
	if a.State == registry.StateOffline && r.URL.Query().Get("force") != "1" {
		Error(w, http.StatusConflict, "agent_offline", fmt.Sprintf("agent %s/%s is offline; a command would wait in the broker until it returns (add ?force=1 to send it anyway)", site, id))
		return wire.Reply{}, false
	}
	timeout := s.o.CommandTimeout
	if t := r.URL.Query().Get("timeout"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d <= 0 || d > 10*time.Minute {
			Error(w, http.StatusBadRequest, "bad_request", fmt.Sprintf("timeout %q: want a duration up to 10m, like 30s", t))
			return wire.Reply{}, false
		}
		timeout = d
	}
	c.V = wire.Version
	c.ID = fmt.Sprintf("%x-%d", s.start, s.cmdID.Add(1))
	c.TS = time.Now().UnixMilli()
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	reply, err := s.o.Commander.Command(ctx, site, id, c)
	if err != nil {
		status, code := http.StatusBadGateway, "not_connected"
		if ctx.Err() != nil {
			status, code = http.StatusGatewayTimeout, "agent_timeout"
		}
		s.log.Warn("command failed", "site", site, "agent", id, "command", c.Name, "error", err)
		Error(w, status, code, err.Error())
		return wire.Reply{}, false
	}
	return reply, true
}

func (s *Server) pushConfig(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxConfigBytes+1))
	if err != nil {
		Error(w, http.StatusBadRequest, "bad_request", "read the body: "+err.Error())
		return
	}
	if len(body) > MaxConfigBytes {
		Error(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("a config may be at most %d bytes", MaxConfigBytes))
		return
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		Error(w, http.StatusBadRequest, "bad_request", "the body must be the agent's new config file (YAML)")
		return
	}
	reply, ok := s.command(w, r, wire.Command{Name: wire.CmdConfig, Config: string(body)})
	if !ok {
		return
	}
	site, id := r.PathValue("site"), r.PathValue("agent")
	if !reply.OK {
		s.log.Info("agent refused a pushed config", "site", site, "agent", id, "error", reply.Error, "problems", len(reply.Errors))
		writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
			"error": map[string]any{"code": "config_rejected", "message": replyMessage(reply), "details": reply.Errors},
			"reply": reply,
		})
		return
	}
	s.o.Registry.Pushed(site, id, reply.ConfigHash)
	s.log.Info("agent applied a pushed config", "site", site, "agent", id, "config_hash", reply.ConfigHash)
	writeJSON(w, http.StatusOK, map[string]any{"reply": reply})
}

func replyMessage(r wire.Reply) string {
	if r.Error != "" {
		return r.Error
	}
	return strings.Join(r.Errors, "\n")
}

func (s *Server) askStatus(w http.ResponseWriter, r *http.Request) {
	reply, ok := s.command(w, r, wire.Command{Name: wire.CmdStatus})
	if !ok {
		return
	}
	if reply.Health != nil {
		s.o.Registry.Health(reply.Health)
	}
	status := http.StatusOK
	if !reply.OK {
		status = http.StatusBadGateway
		writeJSON(w, status, map[string]any{
			"error": map[string]any{"code": "command_failed", "message": replyMessage(reply)},
			"reply": reply,
		})
		return
	}
	writeJSON(w, status, map[string]any{"reply": reply})
}

// errNoToken is returned when a gateway starts without any token.
var errNoToken = errors.New("no API token configured: every API request will be refused")

// CheckTokens reports a configuration that lets nobody in.
func CheckTokens(admin, read []string) error {
	for _, t := range append(append([]string{}, admin...), read...) {
		if t != "" {
			return nil
		}
	}
	return errNoToken
}
