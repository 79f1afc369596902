// chart.js: a small time-series line chart on a canvas, with a legend
// and a text summary for screen readers. No dependencies.

import { h } from './lib.js';

const COLORS = ['#1f5fc4', '#c4461f', '#17733a', '#8a3fc4', '#b38600', '#1f9fb3'];

// Chart keeps up to `span` seconds of points per series and redraws on
// push. Each series has its own scale when `shared` is false (two units
// on one chart: the left axis is the first series', the right the
// second's).
export class Chart {
  constructor({ label, series = [], span = 60, units = [], shared = false, floor = 1 }) {
    this.span = span;
    this.floor = floor; // the smallest top of a scale: a flat zero line sits at the bottom
    this.units = units;
    this.shared = shared;
    this.series = new Map();
    this.canvas = h('canvas', { class: 'chart', role: 'img', 'aria-label': label });
    this.legend = h('ul', { class: 'legend' });
    this.summary = h('p', { class: 'sr-only' });
    this.el = h('figure', { class: 'panel' }, h('figcaption', {}, label), this.canvas, this.legend, this.summary);
    for (const s of series) this.ensure(s);
    requestAnimationFrame(() => this.draw(Date.now())); // the empty grid
  }

  ensure(name) {
    if (!this.series.has(name)) {
      const color = COLORS[this.series.size % COLORS.length];
      const sw = h('span', { class: 'swatch', 'aria-hidden': 'true' });
      sw.style.background = color;
      const value = h('span', { class: 'value' });
      this.legend.append(h('li', {}, sw, name + ': ', value));
      this.series.set(name, { color, points: [], value });
    }
    return this.series.get(name);
  }

  // push adds a value (a number, or null for a gap) to a series at time t
  // (ms) and redraws.
  push(name, t, v, text) {
    const s = this.ensure(name);
    s.points.push([t, v]);
    while (s.points.length && s.points[0][0] < t - this.span * 1000) s.points.shift();
    s.value.textContent = v === null ? '–' : (text || String(v));
    this.draw(t);
  }

  draw(now) {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 300, ht = c.clientHeight || 160;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(ht * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(ht * dpr); }
    const g = c.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, ht);
    const pad = { l: 44, r: 44, t: 8, b: 18 };
    const all = [...this.series.values()];
    const maxOf = (ss) => Math.max(this.floor, ...ss.flatMap(s => s.points.map(p => p[1] ?? 0)));
    const sharedMax = maxOf(all);
    g.font = '11px system-ui, sans-serif';
    g.strokeStyle = '#dde2ea'; g.fillStyle = '#5b6475'; g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + (ht - pad.t - pad.b) * i / 4;
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    }
    g.fillText(`-${this.span}s`, pad.l, ht - 4);
    g.fillText('now', w - pad.r - 20, ht - 4);
    if (this.shared) {
      g.fillStyle = '#5b6475';
      g.fillText(fmtAxis(sharedMax) + (this.units[0] ? ' ' + this.units[0] : ''), 2, pad.t + 10);
    }
    all.forEach((s, i) => {
      const max = this.shared ? sharedMax : maxOf([s]);
      if (!this.shared && i < 2) {
        g.fillStyle = s.color;
        const label = fmtAxis(max) + (this.units[i] ? ' ' + this.units[i] : '');
        g.fillText(label, i === 0 ? 2 : w - pad.r + 2, pad.t + 10);
      }
      g.strokeStyle = s.color; g.lineWidth = 2; g.beginPath();
      let pen = false;
      for (const [t, v] of s.points) {
        if (v === null) { pen = false; continue; }
        const x = pad.l + (w - pad.l - pad.r) * (1 - (now - t) / (this.span * 1000));
        const y = pad.t + (ht - pad.t - pad.b) * (1 - v / max);
        if (pen) g.lineTo(x, y); else g.moveTo(x, y);
        pen = true;
      }
      g.stroke();
      const last = s.points[s.points.length - 1];
      if (last && last[1] !== null) { // the latest value, visible even alone
        g.fillStyle = s.color;
        const x = pad.l + (w - pad.l - pad.r) * (1 - (now - last[0]) / (this.span * 1000));
        g.beginPath(); g.arc(x, pad.t + (ht - pad.t - pad.b) * (1 - last[1] / max), 3, 0, 2 * Math.PI); g.fill();
      }
    });
    this.summary.textContent = 'Latest: ' + all.map((s, i) => `${[...this.series.keys()][i]} ${s.value.textContent}`).join(', ');
  }
}

function fmtAxis(v) {
  if (v >= 100) return v.toFixed(0);
  if (v >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

// parseMetrics reads the Prometheus text format into [{name, labels, value}].
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const [, k, v] of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}
