package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// languages offered, the default first. Each has assets/i18n/LANG.json.
var languages = []string{"en", "zh-CN"}

// LangCookie holds the language the operator chose with the switcher.
const LangCookie = "weft_lang"

var (
	loadOnce sync.Once
	loadErr  error
	// messages[lang][key]; every language has the same keys (a test checks).
	messages map[string]map[string]string
)

func loadMessages() error {
	loadOnce.Do(func() {
		messages = map[string]map[string]string{}
		for _, l := range languages {
			b, err := assets.ReadFile("assets/i18n/" + l + ".json")
			if err != nil {
				loadErr = err
				return
			}
			m := map[string]string{}
			if err := json.Unmarshal(b, &m); err != nil {
				loadErr = fmt.Errorf("dashboard messages %s.json: %w", l, err)
				return
			}
			messages[l] = m
		}
	})
	return loadErr
}

// message is key in lang, else in English, else the key itself (so a
// missing message shows up on the page instead of an empty label).
func message(lang, key string) string {
	if s, ok := messages[lang][key]; ok {
		return s
	}
	if s, ok := messages[languages[0]][key]; ok {
		return s
	}
	return key
}

// pickLang: the switcher's cookie, else the best of Accept-Language, else English.
func pickLang(r *http.Request) string {
	if c, err := r.Cookie(LangCookie); err == nil {
		if l := matchLang(c.Value); l != "" {
			return l
		}
	}
	type choice struct {
		lang string
		q    float64
		pos  int
	}
	var cs []choice
	for i, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				continue
			}
			q = f
		}
		if l := matchLang(tag); l != "" && q > 0 {
			cs = append(cs, choice{l, q, i})
		}
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].q > cs[j].q })
	if len(cs) > 0 {
		return cs[0].lang
	}
	return languages[0]
}

// matchLang maps a language tag to an offered language: any zh (zh, zh-CN,
// zh-Hans, zh-TW) to zh-CN, any en to en.
func matchLang(tag string) string {
	tag = strings.ToLower(strings.TrimSpace(tag))
	switch {
	case tag == "zh" || strings.HasPrefix(tag, "zh-") || strings.HasPrefix(tag, "zh_"):
		return "zh-CN"
	case tag == "en" || strings.HasPrefix(tag, "en-") || strings.HasPrefix(tag, "en_"):
		return "en"
	}
	return ""
}
