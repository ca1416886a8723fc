// tcpinc status page: polls the admin API (../api/v1/status and
// ../api/v1/flows, relative to /ui/) and draws the flows table and two plots
// on <canvas>. No external code, no build step. Every value from the API is
// put into the page as text (textContent), never as HTML.
"use strict";

(function () {
  const params = new URLSearchParams(location.search);
  const interval = Math.max(250, Number(params.get("interval")) || 1000);
  const keep = 120; // samples on the plots

  // A bearer token (needed when the admin API listens beyond loopback) can be
  // given once as #token=...; it stays in this tab's sessionStorage only.
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem("tcpinc-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  const token = sessionStorage.getItem("tcpinc-token");

  function api(path) {
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    return fetch(new URL("../api/v1/" + path, location.href), { headers, cache: "no-store" })
      .then((r) => {
        if (!r.ok) throw new Error(path + ": HTTP " + r.status);
        return r.json();
      });
  }

  // ---- formatting ----
  const TEPS = { 0x21: "P-256", 0x22: "P-521", 0x23: "X25519", 0x24: "X448" };

  function tepName(v) {
    if (v === undefined || v === null || v === "" || v === 0) return "–";
    if (typeof v === "string") return v;
    const name = TEPS[v & 0x7f] || "0x" + (v & 0x7f).toString(16);
    return v & 0x80 ? name + " (resumed)" : name;
  }

  function bytes(n) {
    if (!Number.isFinite(n)) return "–";
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + u[i];
  }

  function bits(n) {
    const u = ["bit/s", "kbit/s", "Mbit/s", "Gbit/s"];
    let i = 0;
    while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
    return (n < 10 && i ? n.toFixed(1) : Math.round(n)) + " " + u[i];
  }

  function duration(sec) {
    if (!Number.isFinite(sec) || sec < 0) return "–";
    sec = Math.floor(sec);
    const d = Math.floor(sec / 86400), h = Math.floor(sec / 3600) % 24,
      mi = Math.floor(sec / 60) % 60, s = sec % 60;
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + mi + "m";
    if (mi) return mi + "m " + s + "s";
    return s + "s";
  }

  // pick returns the first field of o that is present, so the page reads
  // the admin API's names and a few plain alternatives.
  function pick(o, ...names) {
    for (const n of names) {
      if (o && o[n] !== undefined && o[n] !== null) return o[n];
    }
    return undefined;
  }

  function num(v) { return typeof v === "number" ? v : Number(v) || 0; }

  function endpoint(f, side) {
    const v = pick(f, side, side + "_addr");
    if (typeof v === "string") return v;
    if (v && typeof v === "object") {
      const a = pick(v, "addr", "ip", "address");
      const p = pick(v, "port");
      return a && a.includes(":") ? "[" + a + "]:" + p : a + ":" + p;
    }
    // separate src/dst fields
    const a = pick(f, side === "inside" ? "src" : "dst");
    const p = pick(f, side === "inside" ? "sport" : "dport");
    return a !== undefined ? (String(a).includes(":") ? "[" + a + "]:" + p : a + ":" + p) : "–";
  }

  function flowAge(f, nowSec) {
    const a = pick(f, "age_seconds", "age");
    if (typeof a === "number") return a;
    const st = pick(f, "started", "started_at");
    if (st) return nowSec - Date.parse(st) / 1000;
    return NaN;
  }

  // ---- DOM ----
  const $ = (id) => document.getElementById(id);

  function setText(id, v) { $(id).textContent = v === undefined || v === null || v === "" ? "–" : String(v); }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text === undefined || text === null || text === "" ? "–" : String(text);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // Encrypted flows first, then those still negotiating, then plain ones;
  // the newest first within each group.
  function flowOrder(f) {
    if (pick(f, "encrypted")) return 0;
    return pick(f, "fallback_reason", "reason") ? 2 : 1;
  }

  // renderFlows draws the flows table; rates maps a flow ID to its rates
  // in and out (bit/s) since the previous poll, for the flows seen twice.
  function renderFlows(flows, nowSec, rates) {
    const body = $("flows-body");
    const rows = [];
    // The busiest flow (most bits in and out) is marked.
    let busiest, top = 0;
    for (const [id, r] of rates) if (r.in + r.out > top) { top = r.in + r.out; busiest = id; }
    const sorted = flows.slice().sort((a, b) => flowOrder(a) - flowOrder(b) || flowAge(a, nowSec) - flowAge(b, nowSec));
    for (const f of sorted) {
      const tr = document.createElement("tr");
      const enc = !!pick(f, "encrypted");
      const why = pick(f, "fallback_reason", "reason");
      // No reason and not encrypted: the handshake has not finished yet.
      tr.className = enc ? "encrypted" : why ? "plain" : "pending";
      const id = pick(f, "id");
      if (id !== undefined) tr.dataset.flowId = String(id);
      const r = id !== undefined ? rates.get(String(id)) : undefined;
      if (r && String(id) === busiest) tr.dataset.busiest = "";
      cell(tr, endpoint(f, "inside"), "tuple");
      cell(tr, endpoint(f, "outside"), "tuple");
      cell(tr, pick(f, "state"));
      cell(tr, enc ? "yes" : why ? "no: " + why : "not yet (negotiating)", "encflag");
      cell(tr, pick(f, "role"));
      cell(tr, enc ? tepName(pick(f, "tep", "tep_name")) + (typeof pick(f, "tep") === "string" && pick(f, "resumed") ? " (resumed)" : "") : "–");
      cell(tr, enc ? pick(f, "aead") : "–");
      const sid = pick(f, "session_id");
      const td = cell(tr, enc ? sid : "–", "sid");
      if (enc && sid) td.title = "session ID (33 bytes: TEP byte | 32 bytes)";
      cell(tr, enc ? pick(f, "key_generation") : "–", "num");
      // Bytes are the plaintext the engine opened and sealed: a flow
      // without keys has none counted, whatever it carried ("–", not 0 B).
      cell(tr, enc ? bytes(num(pick(f, "bytes_in"))) : "–", "num");
      cell(tr, enc ? bytes(num(pick(f, "bytes_out"))) : "–", "num");
      cell(tr, r ? bits(r.in) : "–", "num rate");
      cell(tr, r ? bits(r.out) : "–", "num rate");
      cell(tr, duration(flowAge(f, nowSec)), "num");
      rows.push(tr);
    }
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell(tr, "no flows");
      td.colSpan = 14;
      rows.push(tr);
    }
    body.replaceChildren(...rows);
  }

  function renderStatus(st) {
    // Conditions the operator must not miss (a key log being written).
    const warn = pick(st, "warnings");
    const wel = document.getElementById("warnings");
    if (wel) {
      const list = Array.isArray(warn) ? warn : [];
      wel.textContent = list.map((w) => "WARNING: " + w).join("\n");
      wel.hidden = list.length === 0;
    }
    setText("s-version", pick(st, "version"));
    const up = pick(st, "uptime_seconds", "uptime");
    setText("s-uptime", typeof up === "number" ? duration(up) : up);
    const aead = pick(st, "aead_preference", "aead_order", "aeads");
    setText("s-aead", Array.isArray(aead) ? aead.join(", ") : aead);
    const ports = pick(st, "ports");
    if (Array.isArray(ports)) {
      setText("s-ports", ports.map((p) => {
        const parts = [pick(p, "role", "name", "port"), pick(p, "iface", "interface")];
        const xdp = pick(p, "xdp_mode"), bind = pick(p, "bind_mode"), q = pick(p, "queues");
        let s = parts.filter((x) => x !== undefined).join(" ");
        if (xdp) s += " xdp=" + xdp;
        if (bind) s += " bind=" + bind;
        if (q !== undefined) s += " queues=" + (Array.isArray(q) ? q.length : q);
        const path = pick(p, "path");
        if (path) s += " path=" + path;
        const mtu = pick(p, "mtu");
        if (mtu) s += " mtu=" + mtu;
        return s;
      }).join(" · "));
    }
  }

  // ---- plots ----
  const series = {
    t: [],          // sample times (seconds)
    enc: [], plain: [],   // bit/s
    hsOK: [], hsFB: [],   // per second
  };

  function push(arr, v) { arr.push(v); if (arr.length > keep) arr.shift(); }

  // draw plots lines (each {values, color}) on canvas with a y axis labelled
  // by fmt. Handles high-DPI screens by scaling the backing store.
  function draw(canvas, lines, fmt, floor) {
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * dpr)) { canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr); }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 78, right = 8, top = 8, bottom = 18;
    const pw = w - left - right, ph = h - top - bottom;
    let max = 0;
    for (const l of lines) for (const v of l.values) if (v > max) max = v;
    max = niceCeil(Math.max(max, floor));
    const css = getComputedStyle(document.documentElement);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = css.getPropertyValue("--muted") || "#667";
    g.strokeStyle = css.getPropertyValue("--line") || "#ddd";
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = top + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(left, Math.round(y) + 0.5); g.lineTo(left + pw, Math.round(y) + 0.5); g.stroke();
      g.fillText(fmt((max * i) / 4), left - 6, y);
    }
    g.textAlign = "left";
    g.textBaseline = "alphabetic";
    g.fillText("last " + Math.round((keep * interval) / 1000) + " s", left, h - 4);
    for (const l of lines) {
      const vs = l.values;
      if (vs.length < 1) continue;
      g.strokeStyle = css.getPropertyValue(l.color) || l.color;
      g.lineWidth = 2;
      g.beginPath();
      vs.forEach((v, i) => {
        const x = left + pw - ((vs.length - 1 - i) * pw) / (keep - 1);
        const y = top + ph - (max ? (v / max) * ph : 0);
        if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
      });
      g.stroke();
    }
  }

  function niceCeil(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 4, 6, 8, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function perSecond(v) { return (v < 10 && v > 0 ? v.toFixed(1) : String(Math.round(v))) + "/s"; }

  function last(a) { return a.length ? a[a.length - 1] : undefined; }

  function redraw() {
    if (series.t.length) {
      $("now-throughput").textContent = "now " + bits(last(series.enc)) + " encrypted, " + bits(last(series.plain)) + " plain" +
        (fastNote ? "; plus " + fastNote : "");
      $("now-handshakes").textContent = "now " + perSecond(last(series.hsOK)) + " encrypted, " + perSecond(last(series.hsFB)) + " other";
    }
    draw($("plot-throughput"), [
      { values: series.enc, color: "--enc" },
      { values: series.plain, color: "--plain" },
    ], bits, 1e6);
    draw($("plot-handshakes"), [
      { values: series.hsOK, color: "--ok" },
      { values: series.hsFB, color: "--fb" },
    ], perSecond, 1);
  }

  // Rates come from differences between successive samples. Throughput:
  // the status counters' bytes per forwarding path ("engine": encrypted
  // flows, translated in user space; "fast" and "passthrough": plain flows,
  // in the kernel or unchanged in user space). Handshakes: the counters of
  // handshakes by result ("encrypted" and resumptions vs the rest). Without
  // those counters the page falls back to what the flows list shows: byte
  // counters per flow and flows that appear. Per flow, the rates in and out
  // come from the same flow ID's byte counters in the previous listing.
  let prev = null;
  let fastNote = "";

  const OK_RESULTS = ["encrypted", "ok", "fresh", "resumed"];

  function counters(st) {
    const c = pick(st, "counters") || {};
    const out = {};
    const paths = pick(c, "paths");
    if (paths && typeof paths === "object") {
      const b = (k) => num(pick(paths[k] || {}, "bytes"));
      out.enc = b("engine");
      out.plain = b("fast") + b("passthrough");
      out.fastFrames = num(pick(paths.fast || {}, "frames"));
      out.fastBytes = b("fast");
    }
    const hs = pick(c, "handshakes");
    if (hs && typeof hs === "object") {
      out.ok = 0;
      out.fb = 0;
      for (const k in hs) {
        if (OK_RESULTS.includes(k)) out.ok += num(hs[k]); else out.fb += num(hs[k]);
      }
    }
    return out;
  }

  function rate(cur, old, dt) {
    return cur !== undefined && old !== undefined ? Math.max(0, cur - old) / dt : undefined;
  }

  // sample records one poll and returns the flows' rates (see renderFlows).
  // A daemon that restarted since the previous poll (its start time
  // changed) starts a new baseline, also when its uptime is past the old
  // one's (it was down longer than it had run): its counters began again
  // at 0 and its flow IDs name other flows.
  function sample(st, flows, nowSec) {
    const started = pick(st, "started");
    if (prev && (nowSec < prev.t || started !== prev.started)) prev = null;
    const byId = new Map();
    for (const f of flows) {
      const id = pick(f, "id");
      const bin = num(pick(f, "bytes_in")), bout = num(pick(f, "bytes_out"));
      if (id !== undefined) byId.set(String(id), { bin, bout, b: bin + bout, enc: !!pick(f, "encrypted") });
    }
    const c = counters(st);
    const rates = new Map();
    // A clock that did not move, or went back (the daemon restarted),
    // starts a new baseline.
    if (prev && nowSec > prev.t) {
      const dt = nowSec - prev.t;
      let dEnc = 0, dPlain = 0, newEnc = 0, newPlain = 0;
      for (const [id, cur] of byId) {
        const old = prev.byId.get(id);
        const d = old ? Math.max(0, cur.b - old.b) : cur.b;
        if (cur.enc) dEnc += d; else dPlain += d;
        if (!old) { if (cur.enc) newEnc++; else newPlain++; }
        // A flow seen once has no rate yet. Only an encrypted flow's
        // bytes are counted (a plain flow's may go by the kernel fast
        // path): no rate for the others. Counters that went back are not
        // the same flow's (IDs are unique since the daemon started; guard
        // anyway): no rate either.
        if (old && cur.enc && cur.bin >= old.bin && cur.bout >= old.bout) {
          rates.set(id, { in: 8 * (cur.bin - old.bin) / dt, out: 8 * (cur.bout - old.bout) / dt });
        }
      }
      const enc = rate(c.enc, prev.c.enc, dt);
      const plain = rate(c.plain, prev.c.plain, dt);
      push(series.t, nowSec);
      push(series.enc, 8 * (enc !== undefined ? enc : dEnc / dt));
      push(series.plain, 8 * (plain !== undefined ? plain : dPlain / dt));
      // A daemon whose kernel fast path counts frames but not bytes: say
      // that the plain rate leaves it out rather than show a false zero.
      const ff = rate(c.fastFrames, prev.c.fastFrames, dt), fbytes = rate(c.fastBytes, prev.c.fastBytes, dt);
      fastNote = ff > 0 && fbytes === 0 ? perSecond(ff).replace("/s", " frames/s") + " on the kernel fast path (bytes not counted)" : "";
      const ok = rate(c.ok, prev.c.ok, dt), fb = rate(c.fb, prev.c.fb, dt);
      push(series.hsOK, ok !== undefined ? ok : newEnc / dt);
      push(series.hsFB, fb !== undefined ? fb : newPlain / dt);
    }
    prev = { t: nowSec, byId, c, started };
    return rates;
  }

  function flowsOf(doc) {
    if (Array.isArray(doc)) return doc;
    return pick(doc, "flows", "items") || [];
  }

  let busy = false;
  let lastOK = ""; // the time of the last poll that succeeded
  async function poll() {
    if (busy) return;
    busy = true;
    const conn = $("conn");
    try {
      const [st, fl] = await Promise.all([api("status"), api("flows?limit=500")]);
      const nowSec = Date.now() / 1000;
      // Rates use the daemon's clock (its uptime) when it gives one, so
      // request latency does not distort them.
      const up = pick(st, "uptime_seconds");
      const sampleSec = typeof up === "number" ? up : nowSec;
      const flows = flowsOf(fl);
      renderStatus(st);
      renderFlows(flows, nowSec, sample(st, flows, sampleSec));
      // The status counts every flow; the flows list may be one page.
      const fs = pick(st, "flows") || {};
      const all = typeof fs.total === "number" ? fs.total : flows.length;
      const enc = typeof fs.encrypted === "number" ? fs.encrypted : flows.filter((f) => pick(f, "encrypted")).length;
      setText("s-flows", all);
      setText("s-encrypted", enc);
      setText("s-plain", all - enc);
      const total = pick(fl, "total");
      $("flows-note").textContent = typeof total === "number" && total > flows.length
        ? "(showing " + flows.length + " of " + total + ")" : "";
      redraw();
      conn.dataset.state = "ok";
      lastOK = new Date().toLocaleTimeString();
      conn.textContent = "live · updated " + lastOK;
    } catch (e) {
      conn.dataset.state = "error";
      conn.textContent = "admin API unreachable: " + e.message;
      // No figure may claim to be current: the rates go (the plots and
      // the table stay, as of the last update the banner names).
      $("now-throughput").textContent = "";
      $("now-handshakes").textContent = "";
      if (lastOK) $("flows-note").textContent = "(as of " + lastOK + ", the last update)";
    } finally {
      busy = false;
    }
  }

  redraw();
  poll();
  setInterval(poll, interval);
})();
