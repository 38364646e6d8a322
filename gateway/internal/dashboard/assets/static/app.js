// Weft dashboard: fills the server-rendered pages from the gateway's JSON API
// (docs/api.md) every few seconds. No framework, no build step. Data is put
// into the page with textContent and DOM nodes only, never as HTML.
'use strict';
(function () {
  const I18N = JSON.parse(document.getElementById('weft-i18n').textContent || '{}');
  const PAGE = document.body.dataset.page;
  const LANG = document.body.dataset.lang || 'en';
  const POLL_MS = 3000;
  const TOKEN_KEY = 'weft.token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  // T is the message key with {0}, {1}... replaced by args.
  function T(key, ...args) {
    let s = Object.prototype.hasOwnProperty.call(I18N, key) ? I18N[key] : key;
    args.forEach((a, i) => { s = s.split('{' + i + '}').join(String(a)); });
    return s;
  }

  // h makes an element: h('td', {class: 'num', title: 'x'}, 'text', node...).
  function h(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'dataset') Object.assign(e.dataset, v);
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : v);
    }
    for (const k of kids.flat()) {
      if (k === undefined || k === null || k === false) continue;
      e.append(k instanceof Node ? k : document.createTextNode(String(k)));
    }
    return e;
  }
  const $ = (id) => document.getElementById(id);

  // ---- token and API ----
  const token = () => localStorage.getItem(TOKEN_KEY) || '';
  function toLogin() {
    const next = location.pathname + location.search;
    location.replace('/login?next=' + encodeURIComponent(next));
  }
  async function api(method, path, body) {
    const headers = { Authorization: 'Bearer ' + token() };
    if (body !== undefined) headers['Content-Type'] = 'application/yaml';
    let r;
    try {
      r = await fetch(path, { method, headers, body, cache: 'no-store' });
    } catch (e) {
      return { status: 0, ok: false, data: null, netError: String(e) };
    }
    let data = null;
    try { data = await r.json(); } catch (e) { /* 204 or not JSON */ }
    if (r.status === 401 && PAGE !== 'login') {
      localStorage.removeItem(TOKEN_KEY);
      toLogin();
    }
    return { status: r.status, ok: r.ok, data };
  }
  // errorText says what went wrong with an API answer, in the page's language,
  // followed by the gateway's own (English) detail.
  function errorText(res) {
    if (res.status === 0) return T('err.network');
    const e = res.data && res.data.error;
    const code = e && e.code ? e.code : 'http_' + res.status;
    const label = T('err.' + code);
    const known = label !== 'err.' + code;
    const detail = e && e.message ? e.message : '';
    if (!known) return T('err.http', res.status) + (detail ? ': ' + detail : '');
    return detail ? label + ' — ' + detail : label;
  }

  // ---- formatting ----
  const nf = new Intl.NumberFormat(LANG);
  function fmtInt(n) { return nf.format(n || 0); }
  function fmtNum(v, digits) {
    if (typeof v !== 'number' || !isFinite(v)) return String(v);
    if (Number.isInteger(v)) return nf.format(v);
    const a = Math.abs(v);
    const d = digits !== undefined ? digits : (a >= 1000 ? 1 : a >= 10 ? 2 : 3);
    return new Intl.NumberFormat(LANG, { maximumFractionDigits: d }).format(v);
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return '—';
    if (typeof v === 'boolean') return v ? T('value.true') : T('value.false');
    if (typeof v === 'number') return fmtNum(v);
    return String(v);
  }
  // fmtDur: a duration in ms as "45 s", "3 min", "2 h 5 min", "3 d".
  function fmtDur(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return T('dur.s', s);
    const m = Math.floor(s / 60);
    if (m < 60) return T('dur.min', m);
    const hr = Math.floor(m / 60);
    if (hr < 48) return m % 60 ? T('dur.h_min', hr, m % 60) : T('dur.h', hr);
    return T('dur.d', Math.floor(hr / 24));
  }
  // ago: "2 min ago", "just now", "never".
  function ago(ms) {
    if (!ms) return T('time.never');
    const d = Date.now() - ms;
    if (d < 5000) return T('time.just_now');
    return T('time.ago', fmtDur(d));
  }
  function fmtTime(ms) {
    if (!ms) return '—';
    const d = new Date(ms);
    const sameDay = new Date().toDateString() === d.toDateString();
    return sameDay ? d.toLocaleTimeString(LANG) : d.toLocaleString(LANG);
  }
  const short = (hash) => (hash || '').slice(0, 12);

  // ---- header: language, logout, role, live indicator ----
  function setupHeader() {
    const sw = $('lang-switch');
    if (sw) {
      sw.addEventListener('change', () => {
        document.cookie = 'weft_lang=' + encodeURIComponent(sw.value) + '; path=/; max-age=31536000; SameSite=Lax';
        location.reload();
      });
    }
    const lo = $('logout');
    if (lo) {
      lo.addEventListener('click', () => {
        localStorage.removeItem(TOKEN_KEY);
        location.href = '/login';
      });
    }
  }
  function live(ok, text) {
    const e = $('live');
    if (!e) return;
    e.className = 'live ' + (ok ? 'ok' : 'stale');
    e.textContent = text;
  }
  let canPush = null; // null until known
  async function checkRole() {
    const r = await api('GET', '/ui/can-push');
    canPush = r.status === 204;
    const role = $('role');
    if (role) role.textContent = canPush ? T('role.admin') : (r.status === 403 ? T('role.read') : '');
    return canPush;
  }
  async function alertBadge(alerts) {
    const c = $('nav-alert-count');
    if (!c) return;
    c.hidden = alerts.length === 0;
    c.textContent = String(alerts.length);
  }

  // poll runs fn now and every POLL_MS, showing in the header whether the
  // last round worked.
  function poll(fn) {
    let timer = null;
    const round = async () => {
      try {
        const ok = await fn();
        if (ok === false) live(false, T('live.error'));
        else live(true, T('live.updated', new Date().toLocaleTimeString(LANG)));
      } catch (e) {
        console.error(e);
        live(false, T('live.error'));
      }
      timer = setTimeout(round, POLL_MS);
    };
    round();
    return () => clearTimeout(timer);
  }

  // ---- agent figures shared by the fleet and agent pages ----
  function deviceCounts(a) {
    const c = { ok: 0, degraded: 0, down: 0 };
    for (const d of a.devices || []) {
      if (d.state in c) c[d.state]++;
    }
    return c;
  }
  function configDiffers(a) {
    return !!(a.pushed_config_hash && a.config_hash && a.pushed_config_hash !== a.config_hash);
  }
  const droppedOf = (a) => (a.dropped ? (a.dropped.oldest || 0) + (a.dropped.newest || 0) : 0);
  // worst: how bad an agent looks; the fleet is sorted by it, worst first.
  function worst(a) {
    let s = 0;
    if (a.state === 'offline') s += 10000;
    else if (a.state !== 'online') s += 5000;
    const c = deviceCounts(a);
    s += c.down * 1000 + c.degraded * 300;
    s += (a.active_alerts || 0) * 200;
    // A batch waiting for its PUBACK is normal; a backlog older than 30 s is not.
    const age = a.backlog ? a.backlog.oldest_age_ms || 0 : 0;
    if (age > 30000) s += Math.min(500, 10 + age / 60000 * 10);
    if (a.seq && a.seq.gaps) s += 100;
    if (droppedOf(a)) s += 100;
    if (configDiffers(a)) s += 50;
    return s;
  }
  function stateBadge(state) {
    const st = state === 'online' || state === 'offline' ? state : 'unknown';
    return h('span', { class: 'badge state-' + st }, T('state.' + st));
  }
  function deviceBadge(state) {
    const st = ['ok', 'degraded', 'down'].includes(state) ? state : 'unknown';
    return h('span', { class: 'badge dev-' + st }, T('device.' + st));
  }
  function configCell(a) {
    const kids = [h('code', { title: a.config_hash || '' }, short(a.config_hash) || '—')];
    if (configDiffers(a)) {
      kids.push(' ', h('span', { class: 'mark', title: T('config.differs', short(a.pushed_config_hash)) }, '≠ ' + T('config.not_pushed')));
    }
    return kids;
  }
  function backlogText(a) {
    const b = a.backlog || {};
    if (!b.samples) return '0';
    return T('backlog.value', fmtInt(b.samples), fmtDur(b.oldest_age_ms || 0));
  }

  // ---- login page ----
  function loginPage() {
    const params = new URLSearchParams(location.search);
    let next = params.get('next') || '/';
    if (!next.startsWith('/') || next.startsWith('//')) next = '/';
    const err = $('login-error');
    const tryToken = async (tok) => {
      err.hidden = true;
      let r;
      try {
        r = await fetch('/api/v1/agents', { headers: { Authorization: 'Bearer ' + tok }, cache: 'no-store' });
      } catch (e) {
        err.textContent = T('err.network');
        err.hidden = false;
        return;
      }
      if (r.ok) {
        localStorage.setItem(TOKEN_KEY, tok);
        location.replace(next);
        return;
      }
      err.textContent = r.status === 401 ? T('login.bad') : T('err.http', r.status);
      err.hidden = false;
    };
    // /login#token=... (printed by make demo): log in with it at once.
    const m = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
    if (m) {
      history.replaceState(null, '', location.pathname + location.search);
      tryToken(decodeURIComponent(m[1]));
    }
    $('login-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      tryToken($('token').value.trim());
    });
  }

  // ---- fleet page ----
  function fleetPage() {
    const q = new URLSearchParams(location.search);
    const st = { sort: q.get('sort') || 'worst', dir: q.get('dir') === 'asc' ? 1 : (q.get('dir') === 'desc' ? -1 : 0),
      site: q.get('site') || '', state: q.get('state') || '', text: q.get('q') || '', agents: [], alerts: [] };
    const fSite = $('filter-site'), fState = $('filter-state'), fText = $('filter-text');
    fState.value = st.state;
    fText.value = st.text;
    const sorters = {
      worst: (a) => worst(a),
      state: (a) => a.state,
      site: (a) => a.site,
      id: (a) => a.id,
      last_seen: (a) => a.last_seen || 0,
      version: (a) => a.version || '',
      config: (a) => (configDiffers(a) ? '0' : '1') + (a.config_hash || ''),
      backlog: (a) => (a.backlog && a.backlog.samples) || 0,
      dropped: droppedOf,
      devices: (a) => { const c = deviceCounts(a); return c.down * 1e6 + c.degraded * 1e3 - c.ok; },
      gaps: (a) => (a.seq && a.seq.gaps) || 0,
      alerts: (a) => a.active_alerts || 0,
    };
    // Numbers and "worst" start high to low; text starts A to Z.
    const defaultDir = (key) => (['site', 'id', 'state', 'version', 'config'].includes(key) ? 1 : -1);
    const saveQuery = () => {
      const p = new URLSearchParams();
      if (st.sort !== 'worst') p.set('sort', st.sort);
      if (st.dir) p.set('dir', st.dir > 0 ? 'asc' : 'desc');
      if (st.site) p.set('site', st.site);
      if (st.state) p.set('state', st.state);
      if (st.text) p.set('q', st.text);
      const s = p.toString();
      history.replaceState(null, '', location.pathname + (s ? '?' + s : ''));
    };
    document.querySelectorAll('#fleet th[data-sort]').forEach((th) => {
      th.addEventListener('click', () => {
        const key = th.dataset.sort;
        const dir = st.dir || defaultDir(st.sort);
        if (st.sort === key) st.dir = -dir; else { st.sort = key; st.dir = 0; }
        saveQuery();
        render();
      });
    });
    fSite.addEventListener('change', () => { st.site = fSite.value; saveQuery(); render(); });
    fState.addEventListener('change', () => { st.state = fState.value; saveQuery(); render(); });
    fText.addEventListener('input', () => { st.text = fText.value.trim(); saveQuery(); render(); });

    function render() {
      const agents = st.agents;
      // Counts over the whole fleet, not the filtered rows.
      let online = 0, offline = 0, down = 0;
      for (const a of agents) {
        if (a.state === 'online') { online++; down += deviceCounts(a).down; } else offline++;
      }
      const count = (id, n) => {
        $(id).textContent = fmtInt(n);
        $(id).parentElement.classList.toggle('zero', n === 0);
      };
      count('count-online', online);
      count('count-offline', offline);
      count('count-devices-down', down);
      count('count-alerts', st.alerts.length);

      const sites = [...new Set(agents.map((a) => a.site))].sort();
      const have = [...fSite.options].slice(1).map((o) => o.value);
      if (sites.join('\n') !== have.join('\n')) {
        while (fSite.options.length > 1) fSite.remove(1);
        for (const s of sites) fSite.add(new Option(s, s));
      }
      fSite.value = sites.includes(st.site) ? st.site : '';

      const text = st.text.toLowerCase();
      const rows = agents.filter((a) => {
        if (st.site && a.site !== st.site) return false;
        if (st.state === 'problem' && worst(a) === 0) return false;
        if (st.state && st.state !== 'problem' && a.state !== st.state) return false;
        if (text && !(a.id.toLowerCase().includes(text) || a.site.toLowerCase().includes(text) ||
          (a.device_names || []).some((d) => d.toLowerCase().includes(text)))) return false;
        return true;
      });
      const key = sorters[st.sort] ? st.sort : 'worst';
      const dir = st.dir || defaultDir(key);
      rows.sort((x, y) => {
        const a = sorters[key](x), b = sorters[key](y);
        if (a < b) return -dir;
        if (a > b) return dir;
        return (x.site + '/' + x.id).localeCompare(y.site + '/' + y.id);
      });
      document.querySelectorAll('#fleet th[data-sort]').forEach((th) => {
        th.classList.toggle('sorted', th.dataset.sort === key);
        th.dataset.dir = th.dataset.sort === key ? (dir > 0 ? '▲' : '▼') : '';
      });
      const tb = document.querySelector('#fleet tbody');
      tb.replaceChildren(...rows.map(fleetRow));
      $('fleet-empty').hidden = rows.length > 0;
      $('fleet').hidden = rows.length === 0;
      $('fleet-shown').textContent = T('fleet.shown', rows.length, agents.length);
    }

    function fleetRow(a) {
      const c = deviceCounts(a);
      const w = worst(a);
      const href = '/agents/' + encodeURIComponent(a.site) + '/' + encodeURIComponent(a.id);
      const devs = h('span', { class: 'devs' },
        h('span', { class: 'dev-ok', title: T('device.ok') }, '● ' + c.ok),
        h('span', { class: 'dev-degraded' + (c.degraded ? '' : ' zero'), title: T('device.degraded') }, '◐ ' + c.degraded),
        h('span', { class: 'dev-down' + (c.down ? '' : ' zero'), title: T('device.down') }, '○ ' + c.down));
      const b = a.backlog || {};
      const seq = a.seq || {};
      return h('tr', { class: 'state-' + a.state + (w >= 1000 ? ' bad' : w > 0 ? ' warn' : ''), dataset: { site: a.site, agent: a.id } },
        h('td', { class: 'sev', title: String(Math.round(w)) }, h('span', { class: 'sev-dot ' + (w >= 1000 ? 'bad' : w > 0 ? 'warn' : 'good') })),
        h('td', {}, stateBadge(a.state)),
        h('td', {}, a.site),
        h('td', {}, h('a', { href, class: 'agent-link' }, a.id)),
        h('td', { title: fmtTime(a.last_seen) }, ago(a.last_seen)),
        h('td', {}, a.version || '—'),
        h('td', {}, configCell(a)),
        h('td', { class: 'num' + (b.oldest_age_ms > 60000 ? ' hot' : '') }, backlogText(a)),
        h('td', { class: 'num' + (droppedOf(a) ? ' hot' : '') }, fmtInt(droppedOf(a))),
        h('td', {}, devs),
        h('td', { class: 'num' + (seq.gaps ? ' hot' : ''), title: T('seq.title', seq.missing || 0, seq.duplicates || 0, seq.late || 0) }, fmtInt(seq.gaps)),
        h('td', { class: 'num' + (a.active_alerts ? ' hot' : '') }, fmtInt(a.active_alerts)));
    }

    poll(async () => {
      const [ra, rl] = await Promise.all([api('GET', '/api/v1/agents'), api('GET', '/api/v1/alerts')]);
      if (!ra.ok || !rl.ok) return false;
      st.agents = ra.data.agents || [];
      st.alerts = rl.data.alerts || [];
      alertBadge(st.alerts);
      render();
      return true;
    });
  }

  // ---- SVG charts: a hand-drawn polyline per series ----
  // chart draws series [{pts: [[t, v], ...], cls}] into el: the last hour, or
  // less (at least 5 minutes) when the data is younger, so that a gateway
  // started a minute ago does not draw a line squeezed against the right edge.
  function chart(el, series, opts) {
    const W = 480, H = 170, L = 52, R = 10, TOP = 10, B = 24;
    const now = Date.now();
    let first = now;
    for (const s of series) {
      for (const [t] of s.pts) if (t >= now - 3600000 && t < first) first = t;
    }
    const spanMin = Math.min(60, Math.max(5, Math.ceil((now - first) / 300000) * 5));
    const t0 = now - spanMin * 60000;
    const svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', opts.label || '');
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(SVG_NS, tag);
      for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
      if (text !== undefined) e.textContent = text;
      svg.append(e);
      return e;
    };
    let lo = Infinity, hi = -Infinity, n = 0;
    for (const s of series) {
      for (const [t, v] of s.pts) {
        if (t < t0 || v === null || !isFinite(v)) continue;
        lo = Math.min(lo, v); hi = Math.max(hi, v); n++;
      }
    }
    add('rect', { x: L, y: TOP, width: W - L - R, height: H - TOP - B, class: 'plot' });
    if (n === 0) {
      add('text', { x: (W + L) / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, opts.empty || T('chart.no_data'));
      el.replaceChildren(svg);
      return;
    }
    if (opts.zero && lo >= 0) {
      // Counts and rates: from 0 to a round number (1, 2, 5 × 10^k), at least 2.
      lo = 0;
      const top = Math.max(2, hi * 1.05);
      const p = Math.pow(10, Math.floor(Math.log10(top)));
      hi = [1, 2, 5, 10].map((m) => m * p).find((v) => v >= top);
    } else {
      if (hi === lo) { hi += 1; lo -= 1; }
      const pad = (hi - lo) * 0.08;
      hi += pad; lo -= pad;
    }
    const x = (t) => L + (t - t0) / (now - t0) * (W - L - R);
    const y = (v) => TOP + (hi - v) / (hi - lo) * (H - TOP - B);
    for (const v of [lo, (lo + hi) / 2, hi]) {
      add('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'gridline' });
      add('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, fmtNum(v, Math.abs(hi - lo) < 10 ? 2 : 0));
    }
    for (const [t, label] of [[t0, T('chart.minus', spanMin)], [t0 + spanMin * 30000, T('chart.minus', fmtNum(spanMin / 2, 1))], [now, T('chart.now')]]) {
      add('text', { x: x(t), y: H - 6, 'text-anchor': t === t0 ? 'start' : t === now ? 'end' : 'middle', class: 'axis' }, label);
    }
    for (const s of series) {
      // A null value or a hole longer than maxGap breaks the line.
      let run = [];
      let prevT = null;
      const flush = () => {
        if (run.length === 1) add('circle', { cx: run[0][0], cy: run[0][1], r: 2, class: 'dot ' + s.cls });
        else if (run.length > 1) add('polyline', { points: run.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' '), class: 'line ' + s.cls });
        run = [];
      };
      for (const [t, v] of s.pts) {
        if (t < t0) continue;
        if (v === null || !isFinite(v) || (prevT !== null && s.maxGap && t - prevT > s.maxGap)) flush();
        if (v !== null && isFinite(v)) run.push([x(t), y(v)]);
        prevT = t;
      }
      flush();
    }
    if (opts.unit) add('text', { x: L + 4, y: TOP + 12, class: 'axis unit' }, opts.unit);
    el.replaceChildren(svg);
  }
  const numOf = (v) => (typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : null);

  // ---- agent page ----
  function agentPage() {
    const site = document.body.dataset.site, id = document.body.dataset.agent;
    const base = '/api/v1/agents/' + encodeURIComponent(site) + '/' + encodeURIComponent(id);
    const sel = $('chart-point');
    let chosen = sessionStorage.getItem('weft.chart.' + site + '/' + id) || '';
    // units: point key → unit from the agent's config (its status), for the chart.
    let units = {};
    sel.addEventListener('change', () => { choose(sel.value); });
    function choose(key) {
      chosen = key;
      sessionStorage.setItem('weft.chart.' + site + '/' + id, key);
      if (sel.value !== key) sel.value = key;
      document.querySelectorAll('#latest tbody tr').forEach((tr) => tr.classList.toggle('chosen', tr.dataset.key === key));
      drawPoint();
    }

    function renderAgent(a, latest, alerts) {
      const stEl = $('agent-state');
      stEl.replaceChildren(stateBadge(a.state));
      $('fact-last-seen').textContent = ago(a.last_seen);
      $('fact-last-seen').title = fmtTime(a.last_seen);
      $('fact-version').textContent = a.version || '—';
      $('fact-config').replaceChildren(...configCell(a));
      $('fact-uptime').textContent = a.state === 'online' && a.uptime_s ? fmtDur(a.uptime_s * 1000) : '—';
      const l = a.link || {};
      $('fact-link').textContent = (l.connected ? T('link.connected') : T('link.disconnected')) +
        ' · ' + T('link.reconnects', fmtInt(l.reconnects)) + (l.last_error ? ' · ' + l.last_error : '');
      $('fact-backlog').textContent = backlogText(a);
      $('fact-dropped').textContent = T('dropped.value', fmtInt(a.dropped ? a.dropped.oldest : 0), fmtInt(a.dropped ? a.dropped.newest : 0));
      const s = a.seq || {};
      $('fact-seq').textContent = T('seq.value', fmtInt(s.last), fmtInt(s.gaps), fmtInt(s.missing), fmtInt(s.duplicates));
      const rc = a.received || {};
      $('fact-received').textContent = T('received.value', fmtNum(rc.samples_per_sec || 0, 1), fmtInt(rc.samples));

      const ul = $('agent-alerts');
      ul.replaceChildren(...alerts.map((x) => h('li', { class: 'alert' },
        h('strong', {}, T('kind.' + x.kind)), x.device ? ' · ' + x.device : '', ' · ', x.message,
        h('span', { class: 'muted' }, ' · ' + T('alert.since', fmtTime(x.started), fmtDur(Date.now() - x.started))))));
      $('agent-alerts-empty').hidden = alerts.length > 0;

      const devs = a.devices || [];
      document.querySelector('#devices tbody').replaceChildren(...devs.map((d) => h('tr', { class: 'dev-row-' + d.state, dataset: { device: d.id } },
        h('td', {}, d.id), h('td', {}, d.protocol || '—'), h('td', {}, deviceBadge(d.state)),
        h('td', { class: 'num' }, T('unit.ms', fmtNum(d.latency_ms || 0, 1))),
        h('td', { class: 'num' + (d.error_rate > 0 ? ' hot' : '') }, fmtNum((d.error_rate || 0) * 100, 1) + ' %'),
        h('td', { class: 'num' }, fmtInt(d.reads)),
        h('td', { class: 'num', title: Object.entries(d.errors_by_kind || {}).map(([k, n]) => k + ' ' + fmtInt(n)).join(', ') }, fmtInt(d.errors)),
        h('td', { title: fmtTime(d.last_ok) }, ago(d.last_ok)),
        h('td', { class: 'err-text' }, d.last_error || ''))));
      $('devices-empty').hidden = devs.length > 0;
      $('devices').hidden = devs.length === 0;

      // Latest values with their units; the chart's point list follows them.
      units = {};
      const rows = latest.map((p) => {
        const key = p.device + '\u0000' + p.point;
        if (p.unit) units[key] = p.unit;
        return h('tr', { class: 'q-' + p.quality + (key === chosen ? ' chosen' : ''), dataset: { key }, onclick: () => choose(key), title: T('agent.latest_click') },
          h('td', {}, p.device), h('td', {}, p.point),
          h('td', { class: 'num value' }, fmtValue(p.value)),
          h('td', { class: 'unit' }, p.unit || ''),
          h('td', {}, h('span', { class: 'badge q-' + p.quality }, T('quality.' + p.quality)), p.code ? ' 0x' + p.code.toString(16).toUpperCase().padStart(8, '0') : ''),
          h('td', { title: fmtTime(p.ts) }, fmtTime(p.ts)));
      });
      document.querySelector('#latest tbody').replaceChildren(...rows);
      $('latest-empty').hidden = rows.length > 0;
      $('latest').hidden = rows.length === 0;
      const keys = latest.filter((p) => numOf(p.value) !== null || p.value === null).map((p) => p.device + '\u0000' + p.point);
      const have = [...sel.options].map((o) => o.value);
      if (keys.join('\n') !== have.join('\n')) {
        sel.replaceChildren(...keys.map((k) => new Option(k.replace('\u0000', ' / '), k)));
      }
      if (!keys.includes(chosen) && keys.length) {
        // A measurement (a fractional number) makes a better first chart than a counter or a flag.
        const m = latest.find((p) => typeof p.value === 'number' && !Number.isInteger(p.value));
        chosen = m ? m.device + '\u0000' + m.point : keys[0];
      }
      sel.value = chosen;
    }

    async function drawPoint() {
      const el = $('chart-point-svg');
      if (!chosen) { chart(el, [], { empty: T('chart.choose') }); return; }
      const [device, point] = chosen.split('\u0000');
      const r = await api('GET', base + '/series?device=' + encodeURIComponent(device) + '&point=' + encodeURIComponent(point) + '&since=1h&limit=2000');
      if (!r.ok) { chart(el, [], { empty: errorText(r) }); return; }
      const pts = (r.data.samples || []).map((s) => [s.ts, s.quality === 'bad' ? null : numOf(s.value)]);
      const unit = units[chosen] || '';
      chart(el, [{ pts, cls: 's1' }], { label: device + ' / ' + point + (unit ? ' (' + unit + ')' : ''), unit });
    }
    async function drawHistory() {
      const r = await api('GET', '/ui/history/' + encodeURIComponent(site) + '/' + encodeURIComponent(id));
      if (!r.ok) return;
      const ps = r.data.points || [];
      const gap = (r.data.every_ms || 10000) * 3;
      chart($('chart-backlog-svg'), [{ pts: ps.map((p) => [p.t, p.backlog]), cls: 's1', maxGap: gap }], { zero: true, label: T('chart.backlog'), unit: T('unit.samples') });
      chart($('chart-rate-svg'), [
        { pts: ps.map((p) => [p.t, p.publish_rate >= 0 ? p.publish_rate : null]), cls: 's1', maxGap: gap },
        { pts: ps.map((p) => [p.t, p.receive_rate]), cls: 's2', maxGap: gap },
      ], { zero: true, label: T('chart.rate'), unit: T('unit.per_s') });
    }

    // Request status.
    $('request-status').addEventListener('click', async () => {
      const out = $('status-result');
      out.className = 'muted';
      out.textContent = T('action.waiting');
      const r = await api('POST', base + '/status');
      if (r.ok) {
        out.className = 'good-text';
        out.textContent = T('action.status_ok', fmtTime(Date.now()));
        refresh();
      } else {
        out.className = 'error';
        out.textContent = errorText(r);
      }
    });

    // Config push.
    const form = $('push-form'), ta = $('push-config'), btn = $('push-submit');
    const applyRole = () => {
      const ro = canPush === false;
      ta.disabled = ro; btn.disabled = ro;
      $('push-readonly').hidden = !ro;
      $('request-status').disabled = ro;
      if (ro) $('request-status').title = T('push.readonly');
    };
    checkRole().then(applyRole);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const out = $('push-result');
      const text = ta.value;
      if (!text.trim()) {
        out.replaceChildren(h('p', { class: 'error' }, T('push.empty')));
        return;
      }
      btn.disabled = true;
      out.replaceChildren(h('p', { class: 'muted' }, T('push.waiting')));
      const r = await api('POST', base + '/config', text);
      btn.disabled = canPush === false;
      if (r.ok) {
        const hash = r.data && r.data.reply ? r.data.reply.config_hash : '';
        out.replaceChildren(h('p', { class: 'good-text', id: 'push-ok' }, T('push.applied', short(hash)), ' ', h('code', {}, hash)));
        refresh();
        return;
      }
      const kids = [h('p', { class: 'error', id: 'push-error' }, r.status === 422 ? T('push.rejected') : errorText(r))];
      const details = r.data && r.data.error && r.data.error.details;
      if (r.status === 422) {
        const lines = details && details.length ? details : [r.data.error.message];
        kids.push(h('ul', { class: 'problems', id: 'push-problems' }, lines.map((d) => h('li', {}, h('code', {}, d)))));
      }
      out.replaceChildren(...kids);
    });

    let agentOK = true;
    async function refresh() {
      const r = await api('GET', base);
      if (r.status === 404) {
        $('agent-missing').hidden = false;
        agentOK = false;
        return true;
      }
      if (!r.ok) return false;
      $('agent-missing').hidden = true;
      agentOK = true;
      renderAgent(r.data.agent, r.data.latest || [], r.data.alerts || []);
      return true;
    }
    poll(async () => {
      const ok = await refresh();
      const rl = await api('GET', '/api/v1/alerts');
      if (rl.ok) alertBadge(rl.data.alerts || []);
      if (agentOK) await Promise.all([drawPoint(), drawHistory()]);
      return ok;
    });
  }

  // ---- alerts page ----
  function alertsPage() {
    const agentLink = (x) => h('a', { href: '/agents/' + encodeURIComponent(x.site) + '/' + encodeURIComponent(x.agent) }, x.site + '/' + x.agent);
    poll(async () => {
      const r = await api('GET', '/api/v1/alerts?history=1');
      if (!r.ok) return false;
      const all = r.data.alerts || [];
      const active = all.filter((x) => !x.ended), recent = all.filter((x) => x.ended);
      alertBadge(active);
      $('alerts-active-count').textContent = String(active.length);
      document.querySelector('#alerts-active tbody').replaceChildren(...active.map((x) => h('tr', { class: 'alert-' + x.kind },
        h('td', {}, h('span', { class: 'badge kind' }, T('kind.' + x.kind))), h('td', {}, agentLink(x)), h('td', {}, x.device || '—'),
        h('td', {}, x.message), h('td', { title: fmtTime(x.started) }, fmtTime(x.started)), h('td', {}, fmtDur(Date.now() - x.started)))));
      $('alerts-active-empty').hidden = active.length > 0;
      $('alerts-active').hidden = active.length === 0;
      document.querySelector('#alerts-recent tbody').replaceChildren(...recent.map((x) => h('tr', {},
        h('td', {}, T('kind.' + x.kind)), h('td', {}, agentLink(x)), h('td', {}, x.device || '—'),
        h('td', {}, x.message), h('td', {}, fmtTime(x.started)), h('td', {}, fmtTime(x.ended)), h('td', {}, fmtDur(x.ended - x.started)))));
      $('alerts-recent-empty').hidden = recent.length > 0;
      $('alerts-recent').hidden = recent.length === 0;
      return true;
    });
  }

  setupHeader();
  if (PAGE === 'login') { loginPage(); return; }
  if (!token()) { toLogin(); return; }
  if (PAGE !== 'agent') checkRole();
  if (PAGE === 'fleet') fleetPage();
  else if (PAGE === 'agent') agentPage();
  else if (PAGE === 'alerts') alertsPage();
})();
