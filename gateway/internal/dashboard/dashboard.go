// Package dashboard is the operator's web dashboard, served by weft-gateway
// on the API's listener: the fleet, one agent, the alerts, and a login page
// that takes an API token. Pages are html/template shells rendered in the
// operator's language; a small hand-written script (assets/static/app.js)
// fills them from the JSON API every few seconds with the token the browser
// keeps in localStorage. Everything is embedded: no CDN, no Node.js.
// docs/operator.md is the guide.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/weftiot/weft/gateway/internal/api"
)

//go:embed assets/templates/*.html assets/static/* assets/i18n/*.json
var assets embed.FS

// Options configure the dashboard.
type Options struct {
	Log *slog.Logger
	// SampleEvery is how often each agent's backlog and publish rate are
	// recorded for the charts (default 10s); an hour of them is kept.
	SampleEvery time.Duration
}

// Dashboard serves the pages and keeps the agents' recent figures.
type Dashboard struct {
	log     *slog.Logger
	pages   map[string]*template.Template
	version string // content hash of the static files, for cache busting
	static  http.Handler
	hist    *history
}

// pageNames are the pages; each has assets/templates/NAME.html.
var pageNames = []string{"fleet", "agent", "alerts", "login"}

// Mount adds the dashboard to the API server: the pages at /, /agents/{site}/{agent},
// /alerts and /login, the static files under /static/, and two small JSON
// routes (token needed) the script uses: /ui/history/{site}/{agent} and
// /ui/can-push. The history sampler runs until ctx is done.
func Mount(ctx context.Context, s *api.Server, o Options) (*Dashboard, error) {
	d, err := New(o)
	if err != nil {
		return nil, err
	}
	reg := s.Registry()
	if reg != nil {
		go d.hist.run(ctx, reg)
	}
	s.Mount("GET /{$}", d.page("fleet"))
	s.Mount("GET /agents/{site}/{agent}", d.page("agent"))
	s.Mount("GET /alerts", d.page("alerts"))
	s.Mount("GET /login", d.page("login"))
	s.Mount("GET /static/", d.static)
	s.Mount("GET /ui/history/{site}/{agent}", s.Auth(false, http.HandlerFunc(d.history)))
	// 204 for an admin token, 403 for a read token: the script disables the
	// config form for the latter (the API refuses its POSTs anyway).
	s.Mount("GET /ui/can-push", s.Auth(true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	})))
	return d, nil
}

// New parses the embedded templates and messages.
func New(o Options) (*Dashboard, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.SampleEvery <= 0 {
		o.SampleEvery = 10 * time.Second
	}
	if err := loadMessages(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(assets, "assets/static")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{log: o.Log.With("component", "dashboard"), pages: map[string]*template.Template{},
		static: cacheHeaders(http.StripPrefix("/static/", http.FileServerFS(static))),
		hist:   newHistory(o.SampleEvery, time.Hour)}
	h := sha256.New()
	if err := fs.WalkDir(static, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, path)
		h.Write(b)
		return err
	}); err != nil {
		return nil, err
	}
	d.version = hex.EncodeToString(h.Sum(nil))[:12]
	for _, name := range pageNames {
		t, err := template.ParseFS(assets, "assets/templates/layout.html", "assets/templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("dashboard template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return d, nil
}

// pageData is what a page template sees.
type pageData struct {
	Lang     string
	Page     string
	Version  string
	Site     string
	Agent    string
	Messages map[string]string
}

// T is the message key in the page's language.
func (p pageData) T(key string) string { return message(p.Lang, key) }

// Langs are the languages offered, for the switcher.
func (p pageData) Langs() []string { return languages }

func (d *Dashboard) page(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lang := pickLang(r)
		data := pageData{Lang: lang, Page: name, Version: d.version, Site: r.PathValue("site"), Agent: r.PathValue("agent"),
			Messages: messages[lang]}
		var buf bytes.Buffer
		if err := d.pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
			d.log.Error("rendering a page failed", "page", name, "error", err)
			http.Error(w, "dashboard: rendering "+name+" failed", http.StatusInternalServerError)
			return
		}
		securityHeaders(w)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Language", lang)
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Add("Vary", "Accept-Language, Cookie")
		_, _ = w.Write(buf.Bytes())
	})
}

// securityHeaders: only our own script and styles; the token travels in a
// header and the URL fragment, never to another site.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
}

func cacheHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		// The pages link /static/x?v=HASH, so a new build is fetched anew.
		if r.URL.Query().Get("v") != "" {
			w.Header().Set("Cache-Control", "public, max-age=86400")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		h.ServeHTTP(w, r)
	})
}
