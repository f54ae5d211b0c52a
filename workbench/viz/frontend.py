"""The browser side of the widgets: one ES module and one stylesheet, inline strings.

anywidget loads ``ESM`` as the widget's ``_esm`` and ``CSS`` as its ``_css``; there
is no npm build step. The module renders by the widget's ``kind`` trait:
``program`` (loop nest + script + block graph), ``schedule`` (steps, program after
the chosen step, diff, error), ``module`` (functions, their graph, the loop nest
of the chosen one) and ``graph`` (a model's graph, or a before/after pair, and the
loop nest of the clicked kernel).

The loop-nest panel keeps big programs responsive: tree levels below
``expand_depth`` are built only when opened, long child lists and the script are
rendered in chunks with a "show more" row, so a 10,000-line program puts a few
hundred rows into the page, not 10,000.
"""
from __future__ import annotations

from .loop_tree import KIND_COLORS
from .script_view import code_css

ESM = r"""
const CHUNK = 400;        // script lines rendered per "show more"
const CHILD_CHUNK = 100;  // tree children rendered per "show more"

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}

function legend(items) {
  const box = el("div", "wb-legend");
  for (const it of items) {
    const s = el("span", "wb-legend-item");
    const sw = el("span", "wb-swatch");
    sw.style.background = it.color;
    s.append(sw, el("span", "", it.label));
    box.append(s);
  }
  return box;
}

function kindBadge(n, colors) {
  const k = n.loop_kind;
  const b = el("span", "wb-kind wb-kind-" + k, k === "thread_binding" ? n.thread : k);
  b.style.background = colors[k] || "#999";
  return b;
}

// ---------------------------------------------------------------- loop nest panel
class LoopNest {
  constructor(root, opts) {
    this.opts = opts;      // {onSelect(id), colors}
    this.root = root;
    this.panes = el("div", "wb-panes");
    this.treeBox = el("div", "wb-tree");
    this.codeBox = el("div", "wb-code");
    this.bufBox = el("div", "wb-buffers");
    this.panes.append(this.treeBox, this.codeBox, this.bufBox);
    this.tools = opts.model ? new Overlays(opts.model, this) : null;
    if (this.tools) root.append(this.tools.bar);
    root.append(this.panes);
    if (this.tools) root.append(this.tools.mcBox);
    this.selected = null;
  }

  subtreeIds(id) {
    const out = new Set();
    const walk = (n) => { out.add(n.id); for (const c of n.children || []) walk(c); };
    const info = this.info && this.info.get(id);
    if (info) walk(info.node);
    return out;
  }

  setProgram(prog) {
    this.prog = prog || {tree: null, lines: [], marks: {}};
    this.info = new Map();   // id -> {node, parent, li, row, built}
    this.treeBox.replaceChildren();
    this.codeBox.replaceChildren();
    this.rendered = 0;
    this.lineEls = [];
    const tree = this.prog.tree;
    this.spans = [];
    if (tree) {
      const walk = (n, parent) => {
        this.info.set(n.id, {node: n, parent: parent, li: null, row: null, built: false});
        if (n.kind !== "func" && n.lines) this.spans.push(n);
        for (const c of n.children || []) walk(c, n.id);
      };
      walk(tree, null);
      const ul = el("ul", "wb-tree-root");
      ul.append(this.makeNode(tree));
      this.treeBox.append(ul);
    } else {
      this.treeBox.append(el("div", "wb-note", "(no loop nest: not a tensor program)"));
    }
    const code = el("div", "wb-code-lines");
    this.codeLines = code;
    this.codeBox.append(code);
    this.more = el("button", "wb-more");
    this.more.addEventListener("click", () => this.renderLines(this.rendered + CHUNK));
    this.codeBox.append(this.more);
    this.renderLines(Math.max(CHUNK, this.firstMark() + 20));
    this.renderBuffers(this.prog.buffers || []);
    const keep = this.selected;
    this.selected = null;
    if (keep && this.info.has(keep)) this.select(keep, false);
  }

  renderBuffers(bufs) {
    this.bufBox.replaceChildren();
    if (!bufs.length) return;
    const det = el("details", "wb-buffers-details");
    det.open = this.buffersOpen !== false;
    det.addEventListener("toggle", () => { this.buffersOpen = det.open; });
    det.append(el("summary", "", "buffers (" + bufs.length + ")"));
    const t = el("table");
    const head = el("tr");
    for (const h of ["buffer", "shape", "dtype", "scope", "declared"]) head.append(el("th", "", h));
    t.append(head);
    for (const b of bufs) {
      const r = el("tr", "wb-buf-row");
      r.append(el("td", "", b.name), el("td", "", "[" + b.shape + "]"), el("td", "", b.dtype),
               el("td", "", b.scope), el("td", "wb-dim", b.where));
      t.append(r);
    }
    det.append(t);
    this.bufBox.append(det);
  }

  expandAll(id) {
    const walk = (nid) => {
      const info = this.info.get(nid);
      if (!info || !(info.node.children || []).length) return;
      this.expand(nid);
      for (const c of info.node.children.slice(0, info.shown || 0)) walk(c.id);
    };
    walk(id);
  }

  firstMark() {
    const m = this.prog.marks || {};
    const all = [].concat(m.changed || [], m.error || []);
    return all.length ? Math.min(...all) : 0;
  }

  renderLines(upto) {
    const lines = this.prog.lines || [];
    upto = Math.min(upto, lines.length);
    const marks = this.prog.marks || {};
    const changed = new Set(marks.changed || []);
    const error = new Set(marks.error || []);
    const frag = document.createDocumentFragment();
    for (let k = this.rendered; k < upto; k++) {
      const row = el("div", "wb-line");
      const no = k + 1;
      row.dataset.line = String(no);
      if (changed.has(no)) row.classList.add("wb-chg");
      if (error.has(no)) row.classList.add("wb-err");
      const ln = el("span", "wb-ln", String(no));
      const src = el("span", "wb-src");
      src.innerHTML = lines[k] || " ";
      row.append(ln, src);
      row.addEventListener("click", () => {
        const id = this.nodeAtLine(no);
        if (id) this.opts.onSelect(id);
      });
      this.lineEls.push(row);
      frag.append(row);
    }
    this.codeLines.append(frag);
    this.rendered = Math.max(this.rendered, upto);
    const left = lines.length - this.rendered;
    this.more.style.display = left > 0 ? "" : "none";
    this.more.textContent = "show more (" + left + " more lines)";
    if (this.selected) this.highlight(this.selected, false);
  }

  nodeAtLine(no) {
    let best = null;
    for (const n of this.spans) {
      if (n.lines[0] <= no && no <= n.lines[1]) {
        if (!best || n.lines[1] - n.lines[0] <= best.lines[1] - best.lines[0]) best = n;
      }
    }
    return best ? best.id : null;
  }

  makeNode(n) {
    const info = this.info.get(n.id);
    const li = el("li", "wb-node wb-node-" + n.kind);
    const row = el("div", "wb-row");
    row.dataset.id = n.id;
    const kids = n.children || [];
    const tog = el("span", "wb-tog", kids.length ? "\u25b8" : "");
    row.append(tog);
    row.append(this.label(n));
    li.append(row);
    info.li = li;
    info.row = row;
    if (this.tools) this.tools.decorate(row, n.id);
    const depth = (this.prog.expand_depth === undefined) ? 4 : this.prog.expand_depth;
    row.addEventListener("click", (ev) => {
      if (ev.target === tog) { this.toggle(n.id); return; }
      if (this.selected === n.id) { this.expandAll(n.id); return; }  // a second click opens everything inside
      this.opts.onSelect(n.id);
    });
    if (kids.length && n.depth < depth) this.expand(n.id);
    return li;
  }

  buildChildren(id, upto) {
    const info = this.info.get(id);
    const kids = info.node.children || [];
    let ul = info.ul;
    if (!ul) { ul = el("ul", "wb-children"); info.ul = ul; info.li.append(ul); info.shown = 0; }
    if (info.moreLi) { info.moreLi.remove(); info.moreLi = null; }
    upto = Math.min(upto, kids.length);
    for (let k = info.shown; k < upto; k++) ul.append(this.makeNode(kids[k]));
    info.shown = Math.max(info.shown, upto);
    if (info.shown < kids.length) {
      const more = el("li", "wb-more-row", "show more (" + (kids.length - info.shown) + " more)");
      more.addEventListener("click", () => this.buildChildren(id, info.shown + CHILD_CHUNK));
      ul.append(more);
      info.moreLi = more;
    }
    info.built = true;
  }

  expand(id, needChild) {
    const info = this.info.get(id);
    if (!info || !(info.node.children || []).length) return;
    let upto = Math.max(info.shown || 0, CHILD_CHUNK);
    if (needChild) {
      const k = info.node.children.findIndex((c) => c.id === needChild);
      if (k >= 0) upto = Math.max(upto, k + 1);
    }
    this.buildChildren(id, upto);
    info.ul.style.display = "";
    info.open = true;
    info.row.querySelector(".wb-tog").textContent = "\u25be";
  }

  collapse(id) {
    const info = this.info.get(id);
    if (!info || !info.ul) return;
    info.ul.style.display = "none";
    info.open = false;
    info.row.querySelector(".wb-tog").textContent = "\u25b8";
  }

  toggle(id) {
    const info = this.info.get(id);
    if (info.open) this.collapse(id); else this.expand(id);
  }

  label(n) {
    const c = this.opts.colors;
    const box = el("span", "wb-label");
    if (n.kind === "func") {
      box.append(el("span", "wb-kw", "def "), el("b", "", n.name));
      box.append(el("span", "wb-dim", "(" + (n.params || []).join(", ") + ")"));
      if ((n.alloc_buffers || []).length) box.append(el("span", "wb-dim", "  alloc " + n.alloc_buffers.join(", ")));
    } else if (n.kind === "loop") {
      box.append(el("span", "wb-kw", "for "), el("b", "wb-var", n.var), el("span", "", " in "));
      const ext = n.min === "0" ? n.extent : (n.min + " + " + n.extent);
      box.append(el("span", "wb-extent", ext), document.createTextNode(" "), kindBadge(n, c));
      for (const [k, v] of Object.entries(n.annotations || {})) box.append(el("span", "wb-ann", k + "=" + v));
    } else if (n.kind === "block") {
      box.append(el("span", "wb-kw", "block "), el("b", "wb-bname", n.name), document.createTextNode(" "));
      for (const iv of n.iter_vars || []) {
        const t = el("span", "wb-iv wb-iv-" + iv.type, iv.name + (iv.type === "reduce" ? ":R" : ":S"));
        t.title = iv.type + " over " + iv.dom + ", bound to " + iv.binding;
        box.append(t);
      }
      const det = el("div", "wb-bdetail");
      det.append(el("div", "", "reads " + ((n.reads || []).join(", ") || "-")));
      det.append(el("div", "", "writes " + ((n.writes || []).join(", ") || "-")));
      if (n.init) det.append(el("div", "wb-init", "init: " + n.init.replace(/\n/g, "; ")));
      if (n.predicate) det.append(el("div", "", "where " + n.predicate));
      if ((n.alloc_buffers || []).length) det.append(el("div", "", "alloc " + n.alloc_buffers.join(", ")));
      for (const [k, v] of Object.entries(n.annotations || {})) det.append(el("span", "wb-ann", k + "=" + v));
      box.append(det);
    }
    return box;
  }

  highlight(id, scroll) {
    for (const e of this.codeLines.querySelectorAll(".wb-hl")) e.classList.remove("wb-hl");
    const info = this.info.get(id);
    if (!info || !info.node.lines || info.node.kind === "func") return;
    const [a, b] = info.node.lines;
    if (b > this.rendered) this.renderLines(b + 20);
    for (let k = a; k <= b && k <= this.lineEls.length; k++) this.lineEls[k - 1].classList.add("wb-hl");
    if (scroll && this.lineEls[a - 1]) {
      const box = this.codeBox, line = this.lineEls[a - 1];
      box.scrollTop = Math.max(0, line.offsetTop - box.offsetTop - 40);
    }
  }

  select(id, scroll = true) {
    if (!this.info || !this.info.has(id)) return;
    // open the ancestors (building them on demand)
    const chain = [];
    let p = this.info.get(id).parent;
    let child = id;
    while (p) { chain.push([p, child]); child = p; p = this.info.get(p).parent; }
    for (const [a, c] of chain.reverse()) this.expand(a, c);
    for (const e of this.treeBox.querySelectorAll(".wb-sel")) e.classList.remove("wb-sel");
    const info = this.info.get(id);
    if (info.row) {
      info.row.classList.add("wb-sel");
      if (scroll) {
        const box = this.treeBox;
        box.scrollTop = Math.max(0, info.row.offsetTop - box.offsetTop - 40);
      }
    }
    this.selected = id;
    this.highlight(id, scroll);
    if (this.tools) this.tools.showSelected(scroll);
  }
}

// ---------------------------------------------------------------- cost heat map and machine code
function fmtCount(x, unit) {
  const steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [v, p] of steps) if (x >= v) return (x / v).toFixed(x / v >= 100 ? 0 : 1) + " " + p + unit;
  return Math.round(x) + " " + unit;
}

class Overlays {
  // the toolbar over the loop nest: a FLOP/byte heat map on the tree rows, and the LLVM IR and assembly
  // of the program with each line linked to its loop or block (both computed in Python when switched on)
  constructor(model, nest) {
    this.model = model; this.nest = nest;
    this.bar = el("div", "wb-tools");
    this.costBtn = el("button", "wb-btn wb-cost-toggle", "\u25a6 cost heat map");
    this.metric = el("select", "wb-cost-metric");
    for (const [k, label] of [["flops", "FLOPs"], ["bytes", "bytes loaded + stored"]]) {
      const o = el("option", "", label); o.value = k; this.metric.append(o);
    }
    this.costNote = el("span", "wb-dim wb-cost-note");
    this.mcBtn = el("button", "wb-btn wb-mc-toggle", "\u2699 machine code");
    this.bar.append(this.costBtn, this.metric, this.costNote, this.mcBtn);
    this.mcBox = el("div", "wb-mc");
    this.mcHead = el("div", "wb-mc-head");
    this.irBox = el("div", "wb-mc-list wb-mc-ir");
    this.asmBox = el("div", "wb-mc-list wb-mc-asm");
    const cols = el("div", "wb-mc-cols");
    const colIr = el("div", "wb-mc-col"), colAsm = el("div", "wb-mc-col");
    colIr.append(el("div", "wb-subtitle", "LLVM IR (optimised)"), this.irBox);
    colAsm.append(el("div", "wb-subtitle", "assembly"), this.asmBox);
    cols.append(colIr, colAsm);
    this.mcBox.append(this.mcHead, cols);
    const flip = (name) => { model.set(name, !model.get(name)); model.save_changes(); };
    this.costBtn.addEventListener("click", () => flip("show_cost"));
    this.mcBtn.addEventListener("click", () => flip("show_machine"));
    this.metric.addEventListener("change", () => { model.set("cost_metric", this.metric.value); model.save_changes(); });
    model.on("change:show_cost", () => this.drawCost());
    model.on("change:cost", () => this.drawCost());
    model.on("change:cost_metric", () => this.drawCost());
    model.on("change:show_machine", () => this.drawMachine());
    model.on("change:machine", () => this.drawMachine());
    this.drawCost(); this.drawMachine();
  }

  decorate(row, id) {
    const old = row.querySelector(".wb-cost");
    if (old) old.remove();
    row.style.boxShadow = "";
    const m = this.model;
    const c = m.get("show_cost") && ((m.get("cost") || {}).nodes || {})[id];
    if (!c) return;
    const metric = m.get("cost_metric") === "bytes" ? "bytes" : "flops";
    const share = c[metric + "_share"] || 0;
    const heat = "rgba(239, 68, 68, " + (0.1 + 0.6 * share).toFixed(3) + ")";
    row.style.boxShadow = "inset " + Math.round(3 + 9 * share) + "px 0 0 " + heat;  // leaves the selection visible
    const tag = el("span", "wb-cost", fmtCount(c[metric], metric === "bytes" ? "B" : "FLOP") + " \u00b7 "
                   + Math.round(100 * share) + "%");
    tag.style.background = heat;
    tag.title = fmtCount(c.flops, "FLOP") + ", " + fmtCount(c.bytes, "B") + " loaded and stored per run";
    row.append(tag);
  }

  drawCost() {
    const m = this.model, on = m.get("show_cost"), cost = m.get("cost") || {};
    this.costBtn.classList.toggle("wb-tab-on", !!on);
    this.metric.style.display = on ? "" : "none";
    this.metric.value = m.get("cost_metric");
    let note = "";
    if (on && cost.error) note = cost.error;
    else if (on && cost.flops !== undefined) {
      note = "total " + fmtCount(cost.flops, "FLOP") + ", " + fmtCount(cost.bytes, "B");
      if (cost.measured_ms !== undefined) note += " \u00b7 measured " + cost.measured_ms.toPrecision(3) + " ms per run ("
          + cost.gflops.toFixed(1) + " GFLOP/s, " + cost.gbps.toFixed(1) + " GB/s)";
    }
    this.costNote.textContent = note;
    if (!this.nest.info) return;
    for (const [id, info] of this.nest.info) if (info.row) this.decorate(info.row, id);
  }

  drawMachine() {
    const m = this.model, on = m.get("show_machine"), mc = m.get("machine") || {};
    this.mcBtn.classList.toggle("wb-tab-on", !!on);
    this.mcBox.style.display = on ? "" : "none";
    if (!on) return;
    this.lines = {ir: [], asm: []};
    for (const [kind, box] of [["ir", this.irBox], ["asm", this.asmBox]]) {
      box.replaceChildren();
      const frag = document.createDocumentFragment();
      (mc[kind] || []).forEach(([text, node], k) => {
        const row = el("div", "wb-mc-line" + (node ? " wb-mc-located" : ""));
        row.dataset.node = node; row.dataset.k = String(k);
        row.append(el("span", "wb-ln", String(k + 1)), el("span", "", text || " "));
        if (node) row.addEventListener("click", () => { m.set("selected", node); m.save_changes(); });
        this.lines[kind].push(row);
        frag.append(row);
      });
      box.append(frag);
    }
    if (mc.pending) this.mcHead.textContent = "compiling for " + mc.target + " ...";
    else if (mc.error) this.mcHead.textContent = "no machine code: " + mc.error;
    else this.showSelected(true);
  }

  showSelected(scroll) {
    const mc = this.model.get("machine") || {};
    if (!this.model.get("show_machine") || !this.lines || mc.pending || mc.error) return;
    const id = this.nest.selected;
    const ids = id ? this.nest.subtreeIds(id) : new Set();
    const counts = {};
    for (const kind of ["ir", "asm"]) {
      let first = null, n = 0;
      for (const row of this.lines[kind]) {
        const on = ids.has(row.dataset.node);
        row.classList.toggle("wb-hl", on);
        if (on) { n++; if (!first) first = row; }
      }
      counts[kind] = n;
      const box = kind === "ir" ? this.irBox : this.asmBox;
      if (scroll && first) box.scrollTop = Math.max(0, first.offsetTop - 30);  // the list is the offset parent
    }
    const info = id && this.nest.info.get(id);
    const what = info ? (info.node.kind === "loop" ? "loop " + info.node.var : info.node.kind === "block"
                          ? "block " + info.node.name : info.node.name) : "";
    this.mcHead.textContent = "target " + mc.target + (what ? " \u00b7 " + what + ": " + counts.ir + " IR lines, "
        + counts.asm + " assembly lines (click a line to select its loop or block)"
        : " \u00b7 select a loop or block to light up its lines; click a line to select its loop or block")
        + (mc.truncated ? " \u00b7 (listings cut)" : "");
  }
}

// ---------------------------------------------------------------- graph panel
function graphPanel(box, svg, onNode) {
  box.replaceChildren();
  if (!svg) { box.append(el("div", "wb-note", "drawing the graph ...")); return; }
  const holder = el("div", "wb-graph");
  holder.innerHTML = svg;
  for (const g of holder.querySelectorAll("g.node")) {
    const id = g.id || "";
    if (id.startsWith("wb-block-") || id.startsWith("wb-loop-") || id.startsWith("wb-fn-")) {
      g.classList.add("wb-clickable");
      g.addEventListener("click", () => onNode(id.slice(3)));
    }
  }
  box.append(holder);
}

function tabs(names, current, onPick) {
  const bar = el("div", "wb-tabs");
  for (const [key, label] of names) {
    const t = el("button", "wb-tab" + (key === current ? " wb-tab-on" : ""), label);
    t.dataset.tab = key;
    t.addEventListener("click", () => onPick(key));
    bar.append(t);
  }
  return bar;
}

function setTabs(bar, current) {
  for (const t of bar.querySelectorAll(".wb-tab")) t.classList.toggle("wb-tab-on", t.dataset.tab === current);
}

// ---------------------------------------------------------------- views
function programView(model, root) {
  const colors = model.get("colors");
  const head = el("div", "wb-head");
  const title = el("div", "wb-title");
  head.append(title);
  const tabBar = tabs([["loops", "Loop nest"], ["graph", "Block graph"]], model.get("tab"), (k) => {
    model.set("tab", k); model.save_changes();
  });
  head.append(tabBar, legend(model.get("legend")));
  root.append(head);
  const body = el("div", "wb-body");
  const loops = el("div", "wb-loops");
  const graph = el("div", "wb-graphbox");
  body.append(loops, graph);
  root.append(body);
  const nest = new LoopNest(loops, {colors, model: model.get("tools") ? model : null,
                                    onSelect: (id) => { model.set("selected", id); model.save_changes(); }});
  const show = () => {
    const tab = model.get("tab");
    setTabs(tabBar, tab);
    loops.style.display = tab === "loops" ? "" : "none";
    graph.style.display = tab === "graph" ? "" : "none";
  };
  const drawGraph = () => graphPanel(graph, model.get("graph_svg"), (id) => {
    model.set("tab", "loops"); model.set("selected", id); model.save_changes();
    nest.select(id); nest.expandAll(id);   // the block and every loop inside it, opened
  });
  const load = () => {
    const p = model.get("program");
    title.textContent = (p.title || ("PrimFunc " + (p.name || "")));
    nest.setProgram(p);
    if (model.get("selected")) nest.select(model.get("selected"));
  };
  load(); drawGraph(); show();
  model.on("change:program", load);
  model.on("change:graph_svg", drawGraph);
  model.on("change:tab", show);
  model.on("change:selected", () => nest.select(model.get("selected")));
  return nest;
}

const CHANGE_TAGS = {added: "+ added", removed: "\u2212 removed", moved: "\u21b7 moved", extent: "\u2194 extent",
                     kind: "\u2699 kind"};

function diffTable(box, diff, onNode) {
  box.replaceChildren();
  const rows = (diff && diff.rows) || [];
  if (!rows.length || !rows.some((r) => r.tag === "+" || r.tag === "-")) {
    box.append(el("div", "wb-note", "no change to the program in this step"));
    return;
  }
  const changes = (diff && diff.tree) || [];
  const text = el("div", "wb-textdiff");
  if (changes.length) {
    const list = el("ul", "wb-tree-diff");
    for (const c of changes) {
      const li = el("li", "wb-td wb-td-" + c.change);
      li.dataset.id = c.id;
      li.append(el("span", "wb-td-tag", CHANGE_TAGS[c.change] || c.change), el("span", "", c.text));
      if (c.change !== "removed") li.addEventListener("click", () => onNode(c.id));
      list.append(li);
    }
    const toggle = el("button", "wb-btn wb-textdiff-toggle", "show the text diff");
    text.style.display = "none";
    toggle.addEventListener("click", () => {
      const hidden = text.style.display === "none";
      text.style.display = hidden ? "" : "none";
      toggle.textContent = hidden ? "hide the text diff" : "show the text diff";
    });
    box.append(list, toggle);
  }
  box.append(text);
  box = text;
  const t = el("div", "wb-diff");
  for (const r of rows) {
    if (r.tag === "...") { t.append(el("div", "wb-diff-skip", "\u22ef " + r.skipped + " unchanged lines")); continue; }
    const row = el("div", "wb-diff-row " + (r.tag === "+" ? "wb-add" : r.tag === "-" ? "wb-del" : ""));
    row.append(el("span", "wb-ln", r.old === null ? "" : String(r.old)),
               el("span", "wb-ln", r.new === null ? "" : String(r.new)),
               el("span", "wb-tag", r.tag), el("span", "wb-src", r.text));
    t.append(row);
  }
  box.append(t);
}

function scheduleView(model, root) {
  const colors = model.get("colors");
  const head = el("div", "wb-head");
  const title = el("div", "wb-title", model.get("title"));
  head.append(title, legend(model.get("legend")));
  root.append(head);
  const body = el("div", "wb-body wb-sched");
  const side = el("div", "wb-side");
  const nav = el("div", "wb-nav");
  const prev = el("button", "wb-btn wb-prev", "\u25c0 prev");
  const next = el("button", "wb-btn wb-next", "next \u25b6");
  const slider = el("input", "wb-slider");
  slider.type = "range"; slider.min = "0";
  nav.append(prev, slider, next);
  const list = el("ol", "wb-steps");
  side.append(nav, list);
  const main = el("div", "wb-main");
  const banner = el("div", "wb-error-banner");
  const tabBar = tabs([["loops", "Program"], ["diff", "Diff"], ["graph", "Block graph"]], model.get("tab"), (k) => {
    model.set("tab", k); model.save_changes();
  });
  const loops = el("div", "wb-loops");
  const diff = el("div", "wb-diffbox");
  const graph = el("div", "wb-graphbox");
  main.append(banner, tabBar, loops, diff, graph);
  body.append(side, main);
  root.append(body);
  const nest = new LoopNest(loops, {colors, model: model.get("tools") ? model : null,
                                    onSelect: (id) => { model.set("selected", id); model.save_changes(); }});
  const pickNode = (id) => { model.set("tab", "loops"); model.set("selected", id); model.save_changes(); };
  const setStep = (k) => {
    const n = model.get("steps").length;
    k = Math.max(0, Math.min(n - 1, k));
    model.set("step", k); model.save_changes();
  };
  prev.addEventListener("click", () => setStep(model.get("step") - 1));
  next.addEventListener("click", () => setStep(model.get("step") + 1));
  slider.addEventListener("input", () => setStep(parseInt(slider.value, 10)));
  const drawSteps = () => {
    const steps = model.get("steps");
    slider.max = String(steps.length - 1);
    list.replaceChildren();
    for (const s of steps) {
      const li = el("li", "wb-step wb-step-" + s.status);
      li.dataset.step = String(s.index);
      li.append(el("span", "wb-step-no", s.status === "error" ? "\u2716" : String(s.index)),
                el("code", "wb-step-text", s.text));
      li.addEventListener("click", () => setStep(s.index));
      list.append(li);
    }
  };
  const showStep = () => {
    const k = model.get("step");
    slider.value = String(k);
    for (const li of list.querySelectorAll(".wb-step")) li.classList.toggle("wb-step-on", li.dataset.step === String(k));
    const steps = model.get("steps");
    prev.disabled = k <= 0; next.disabled = k >= steps.length - 1;
  };
  const show = () => {
    const tab = model.get("tab");
    setTabs(tabBar, tab);
    loops.style.display = tab === "loops" ? "" : "none";
    diff.style.display = tab === "diff" ? "" : "none";
    graph.style.display = tab === "graph" ? "" : "none";
  };
  const load = () => {
    const p = model.get("program");
    nest.setProgram(p);
    diffTable(diff, model.get("diff"), pickNode);
    const err = p.error;
    banner.replaceChildren();
    banner.style.display = err ? "" : "none";
    if (err) {
      banner.append(el("b", "", err.type + ": "), el("span", "wb-error-msg", err.message));
      if (err.detail) banner.append(el("div", "wb-error-detail", err.detail));
      if (err.node) nest.select(err.node);
    } else if (model.get("selected")) {
      nest.select(model.get("selected"), false);
    }
    showStep();
  };
  const drawGraph = () => graphPanel(graph, model.get("graph_svg"), (id) => {
    model.set("tab", "loops"); model.set("selected", id); model.save_changes();
    nest.select(id); nest.expandAll(id);
  });
  drawSteps(); load(); drawGraph(); show();
  model.on("change:steps", () => { drawSteps(); showStep(); });
  model.on("change:step", showStep);
  model.on("change:program", load);
  model.on("change:diff", () => diffTable(diff, model.get("diff"), pickNode));
  model.on("change:graph_svg", drawGraph);
  model.on("change:tab", show);
  model.on("change:selected", () => nest.select(model.get("selected")));
}

function moduleView(model, root) {
  const colors = model.get("colors");
  const head = el("div", "wb-head");
  head.append(el("div", "wb-title", model.get("title")), legend(model.get("legend")));
  root.append(head);
  const body = el("div", "wb-body wb-sched");
  const side = el("div", "wb-side");
  const list = el("ul", "wb-fns");
  const graph = el("div", "wb-graphbox wb-modgraph");
  side.append(list, graph);
  const main = el("div", "wb-main");
  const title = el("div", "wb-subtitle");
  const loops = el("div", "wb-loops");
  main.append(title, loops);
  body.append(side, main);
  root.append(body);
  const nest = new LoopNest(loops, {colors, onSelect: (id) => { model.set("selected", id); model.save_changes(); }});
  const pick = (name) => { model.set("current", name); model.save_changes(); };
  const drawList = () => {
    list.replaceChildren();
    for (const f of model.get("functions")) {
      const li = el("li", "wb-fn" + (f.name === model.get("current") ? " wb-fn-on" : ""));
      li.dataset.name = f.name;
      li.append(el("code", "", f.name), el("span", "wb-dim", " " + f.kind));
      li.addEventListener("click", () => pick(f.name));
      list.append(li);
    }
  };
  const load = () => {
    const p = model.get("program");
    title.textContent = p.title || p.name || "";
    nest.setProgram(p);
    drawList();
  };
  graphPanel(graph, model.get("graph_svg"), (id) => pick(id.replace(/^fn-/, "")));
  load();
  model.on("change:program", load);
  model.on("change:current", drawList);
  model.on("change:selected", () => nest.select(model.get("selected")));
}

// ---------------------------------------------------------------- graph view (a model's graph function)
function graphView(model, root) {
  const colors = model.get("colors");
  const head = el("div", "wb-head");
  head.append(el("div", "wb-title", model.get("title")));
  const bar = el("div", "wb-gbar");
  const expandAll = el("button", "wb-btn wb-expand-all", "expand all layers");
  const collapseAll = el("button", "wb-btn wb-collapse-all", "collapse layers");
  bar.append(expandAll, collapseAll);
  head.append(bar);
  root.append(head);
  const panes = el("div", "wb-gpanes");
  const detail = el("div", "wb-gdetail");
  const loops = el("div", "wb-loops wb-gkernel");
  root.append(panes, detail, loops);
  loops.append(legend(model.get("legend")));
  const nest = new LoopNest(loops, {colors, onSelect: () => {}});
  const setExpanded = (list) => { model.set("expanded", list); model.save_changes(); };
  const layersOf = () => {
    const all = new Set();
    for (const g of model.get("graphs")) for (const k of g.layers || []) all.add(k);
    return [...all].sort((a, b) => a - b);
  };
  expandAll.addEventListener("click", () => setExpanded(layersOf()));
  collapseAll.addEventListener("click", () => setExpanded([]));
  const markSelected = () => {
    const sel = model.get("selected") || "";
    for (const e of panes.querySelectorAll(".wb-gsel")) e.classList.remove("wb-gsel");
    const cut = sel.indexOf("/");
    if (cut < 0) return;
    const pane = panes.querySelectorAll(".wb-gpane")[parseInt(sel.slice(0, cut), 10)];
    const node = pane && pane.querySelector("#wbg-" + CSS.escape(sel.slice(cut + 1)));
    if (node) node.classList.add("wb-gsel");
  };
  const draw = () => {
    panes.replaceChildren();
    const graphs = model.get("graphs");
    panes.classList.toggle("wb-gpanes-2", graphs.length > 1);
    graphs.forEach((g, k) => {
      const pane = el("div", "wb-gpane");
      pane.dataset.pane = String(k);
      pane.append(el("div", "wb-subtitle", g.title), el("div", "wb-dim wb-graph-summary", g.summary));
      const holder = el("div", "wb-graph wb-graphbox");
      holder.innerHTML = g.svg;
      for (const node of holder.querySelectorAll("g.node")) {
        const id = (node.id || "").replace(/^wbg-/, "");
        if (!node.id.startsWith("wbg-")) continue;
        node.classList.add("wb-clickable");
        node.addEventListener("click", () => {
          if (id.startsWith("layer-")) {
            const n = parseInt(id.slice(6), 10);
            setExpanded([...new Set([...model.get("expanded"), n])]);
          } else {
            model.set("selected", k + "/" + id); model.save_changes();
          }
        });
      }
      for (const cl of holder.querySelectorAll("g.cluster")) {
        if (!(cl.id || "").startsWith("wbg-cl-layer-")) continue;
        const n = parseInt(cl.id.slice(13), 10);
        const label = cl.querySelector("text");
        if (!label) continue;
        label.classList.add("wb-clickable", "wb-glayer-label");
        label.addEventListener("click", () => setExpanded(model.get("expanded").filter((x) => x !== n)));
      }
      pane.append(holder);
      panes.append(pane);
    });
    markSelected();
  };
  const showDetail = () => {
    const d = model.get("detail") || {};
    detail.replaceChildren();
    if (!d.id) {
      detail.append(el("div", "wb-note", "click a node: a kernel call opens its loop nest and script below"));
      return;
    }
    const line = el("div", "wb-gdetail-line");
    line.append(el("b", "", d.kind === "call_tir" ? "kernel " + d.kernel : d.label),
                el("span", "wb-dim", "  " + (d.layer_name ? d.layer_name + " \u00b7 " : "") + d.type));
    detail.append(line, el("code", "wb-gbinding", d.text));
    if ((d.weights || []).length) {
      detail.append(el("div", "wb-dim", "weights: " + d.weights.map((w) => w[0] + " " + w[1]).join(", ")));
    }
    if ((d.calls || []).length > 1) detail.append(el("div", "wb-dim", "called " + d.calls.length
        + " times: " + d.calls.join(", ")));
    if (d.kind === "op") {
      detail.append(el("div", "wb-note", "a graph op: it gets a kernel when legalized (wb.transform.LegalizeOps())"));
    }
  };
  const load = () => {
    const p = model.get("program");
    loops.style.display = p && p.tree ? "" : "none";
    nest.setProgram(p && p.tree ? p : {tree: null, lines: [], marks: {}});
  };
  draw(); showDetail(); load();
  model.on("change:graphs", draw);
  model.on("change:selected", markSelected);
  model.on("change:detail", showDetail);
  model.on("change:program", load);
}

// ---------------------------------------------------------------- a benchmark's rows, each opening its variant
function benchView(model, root) {
  const colors = model.get("colors");
  const head = el("div", "wb-head");
  head.append(el("div", "wb-title", model.get("title")), legend(model.get("legend")));
  root.append(head);
  const table = el("table", "wb-bench-table");
  const sub = el("div", "wb-subtitle");
  const loops = el("div", "wb-loops");
  root.append(table, sub, loops);
  const nest = new LoopNest(loops, {colors, model,
                                    onSelect: (id) => { model.set("selected", id); model.save_changes(); }});
  const drawRows = () => {
    table.replaceChildren();
    const hr = el("tr");
    for (const h of ["variant", "status", "median ms", "GFLOP/s", "speedup", "note"]) hr.append(el("th", "", h));
    table.append(hr);
    for (const r of model.get("rows")) {
      const tr = el("tr", "wb-bench-row" + (r.variant === model.get("variant") ? " wb-bench-on" : ""));
      tr.dataset.variant = r.variant;
      const name = el("td");
      if (r.program) {
        const a = el("a", "wb-bench-link", r.variant);
        a.href = "#"; a.title = "show this variant's loop nest, cost and machine code";
        name.append(a);
        tr.addEventListener("click", (ev) => { ev.preventDefault(); model.set("variant", r.variant); model.save_changes(); });
      } else name.append(el("span", "", r.variant));
      tr.append(name);
      for (const k of ["status", "median_ms", "gflops", "speedup", "note"]) tr.append(el("td", "", String(r[k] || "")));
      table.append(tr);
    }
  };
  const load = () => {
    const p = model.get("program");
    sub.textContent = p.title || "";
    nest.setProgram(p && p.tree ? p : {tree: null, lines: [], marks: {}});
    drawRows();
  };
  load();
  model.on("change:rows", drawRows);
  model.on("change:variant", drawRows);
  model.on("change:program", load);
  model.on("change:selected", () => nest.select(model.get("selected")));
}

function render({ model, el: host }) {
  const root = el("div", "wb-root");
  host.append(root);
  const kind = model.get("kind");
  try {
    if (kind === "schedule") scheduleView(model, root);
    else if (kind === "module") moduleView(model, root);
    else if (kind === "graph") graphView(model, root);
    else if (kind === "bench") benchView(model, root);
    else programView(model, root);
    root.dataset.ready = "1";
  } catch (err) {
    root.append(el("pre", "wb-err", "workbench widget failed to render: " + err));
    throw err;
  }
  return () => root.remove();
}

export default { render };
"""

CSS_BASE = r"""
/* colours come from JupyterLab's theme variables (light and dark), with light fallbacks elsewhere */
.wb-root { --wb-bg: var(--jp-layout-color1, #fff); --wb-bg2: var(--jp-layout-color2, #f3f4f6);
  --wb-fg: var(--jp-ui-font-color1, #1f2937); --wb-fg2: var(--jp-ui-font-color2, #6b7280);
  --wb-border: var(--jp-border-color2, #e5e7eb); --wb-code-bg: var(--jp-cell-editor-background, #fbfbfb);
  --wb-accent: var(--jp-brand-color1, #2563eb); --wb-kw: var(--jp-mirror-editor-keyword-color, #7c3aed);
  --wb-num: var(--jp-mirror-editor-number-color, #0f766e);
  --wb-sel: rgba(250, 204, 21, 0.38); --wb-add: rgba(34, 197, 94, 0.2); --wb-del: rgba(239, 68, 68, 0.2);
  container-type: inline-size; font-family: var(--jp-ui-font-family, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif);
  font-size: 12.5px; color: var(--wb-fg); border: 1px solid var(--wb-border); border-radius: 6px;
  padding: 6px 8px; background: var(--wb-bg); }
.wb-head { display: flex; align-items: center; gap: 12px; flex-wrap: wrap; margin-bottom: 6px; }
.wb-title { font-weight: 600; font-size: 13.5px; }
.wb-subtitle { font-weight: 600; margin: 2px 0 4px; }
.wb-legend { display: flex; gap: 10px; flex-wrap: wrap; margin-left: auto; color: var(--wb-fg2); }
.wb-legend-item { display: inline-flex; align-items: center; gap: 4px; }
.wb-swatch { width: 10px; height: 10px; border-radius: 2px; display: inline-block; }
.wb-tabs { display: flex; gap: 2px; flex-wrap: wrap; }
.wb-tab, .wb-btn { border: 1px solid var(--wb-border); background: var(--wb-bg2); padding: 2px 10px; cursor: pointer;
  border-radius: 4px; font-size: 12px; color: var(--wb-fg); }
.wb-btn:disabled { opacity: 0.45; cursor: default; }
.wb-tab-on { background: var(--wb-accent); color: #fff; border-color: var(--wb-accent); }
.wb-panes { display: grid; grid-template-columns: minmax(0, 45fr) minmax(0, 55fr); gap: 8px; }
.wb-tree { max-height: 460px; overflow: auto; border: 1px solid var(--wb-border); border-radius: 4px;
  padding: 4px; position: relative; min-width: 0; }
.wb-code { max-height: 460px; overflow: auto; background: var(--wb-code-bg); border: 1px solid var(--wb-border);
  border-radius: 4px; position: relative; min-width: 0; }
.wb-code-lines { width: max-content; min-width: 100%; }
.wb-buffers { grid-column: 1 / -1; overflow-x: auto; }
.wb-buffers table { border-collapse: collapse; font-size: 11.5px; }
.wb-buffers th { text-align: left; color: var(--wb-fg2); font-weight: 600; padding: 1px 12px 1px 0; }
.wb-buffers td { padding: 1px 12px 1px 0; font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); }
.wb-buffers summary { cursor: pointer; color: var(--wb-fg2); }
.wb-tree ul { list-style: none; margin: 0; padding-left: 14px; }
.wb-tree > ul.wb-tree-root { padding-left: 0; }
.wb-row { cursor: pointer; padding: 1px 4px; border-radius: 3px; white-space: nowrap; }
.wb-row:hover { background: var(--wb-bg2); }
.wb-row.wb-sel { background: var(--wb-sel); }
.wb-tog { display: inline-block; width: 12px; color: var(--wb-fg2); }
.wb-kw { color: var(--wb-kw); }
.wb-dim { color: var(--wb-fg2); }
.wb-var { color: var(--wb-fg); }
.wb-extent { color: var(--wb-num); font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); }
.wb-kind { color: #fff; border-radius: 3px; padding: 0 5px; font-size: 11px; }
.wb-ann { background: rgba(245, 158, 11, 0.22); color: var(--wb-fg); border-radius: 3px; padding: 0 4px; margin-left: 4px; font-size: 11px; }
.wb-iv { border-radius: 3px; padding: 0 4px; margin-right: 3px; font-size: 11px;
  font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); }
.wb-iv-spatial { background: rgba(59, 130, 246, 0.22); }
.wb-iv-reduce { background: rgba(239, 68, 68, 0.22); }
.wb-iv-opaque { background: var(--wb-bg2); }
.wb-bdetail { color: var(--wb-fg2); padding-left: 16px; font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace);
  font-size: 11.5px; white-space: normal; }
.wb-init { color: var(--wb-fg2); font-style: italic; }
.wb-code-lines { font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); font-size: 12px; line-height: 1.45; }
.wb-line { white-space: pre; cursor: pointer; padding-right: 8px; }
.wb-line:hover { background: var(--wb-bg2); }
.wb-ln { display: inline-block; min-width: 3.2em; text-align: right; padding-right: 8px; color: var(--wb-fg2);
  user-select: none; }
.wb-line.wb-hl { background: var(--wb-sel); }
.wb-line.wb-chg { box-shadow: inset 3px 0 0 #16a34a; background: var(--wb-add); }
.wb-line.wb-chg.wb-hl { background: var(--wb-sel); }
.wb-line.wb-err { box-shadow: inset 3px 0 0 #dc2626; background: var(--wb-del); }
.wb-more, .wb-more-row { margin: 4px; font-size: 11.5px; color: var(--wb-accent); cursor: pointer; background: none;
  border: 1px dashed var(--wb-accent); border-radius: 3px; padding: 2px 8px; }
.wb-note { color: var(--wb-fg2); font-style: italic; padding: 6px; }
.wb-graph svg { max-width: 100%; height: auto; }
.wb-graphbox { overflow: auto; max-height: 480px; background: #fff; border-radius: 4px; }
.wb-clickable { cursor: pointer; }
.wb-clickable:hover path, .wb-clickable:hover polygon, .wb-clickable:hover ellipse { stroke-width: 2.5; }
.wb-sched { display: flex; gap: 10px; }
.wb-side { flex: 0 0 26%; max-width: 340px; min-width: 0; }
.wb-main { flex: 1 1 74%; min-width: 0; display: flex; flex-direction: column; gap: 4px; }
.wb-nav { display: flex; gap: 4px; align-items: center; margin-bottom: 4px; }
.wb-slider { flex: 1; min-width: 40px; }
.wb-steps, .wb-fns { list-style: none; margin: 0; padding: 0; max-height: 420px; overflow: auto; }
.wb-step, .wb-fn { padding: 2px 6px; border-radius: 3px; cursor: pointer; display: flex; gap: 6px; }
.wb-step:hover, .wb-fn:hover { background: var(--wb-bg2); }
.wb-step-on, .wb-fn-on { background: rgba(59, 130, 246, 0.25); }
.wb-step-no { color: var(--wb-fg2); min-width: 1.6em; text-align: right; }
.wb-step-text { white-space: pre-wrap; word-break: break-word; font-size: 11.5px; }
.wb-step-error { color: var(--jp-error-color1, #b91c1c); }
.wb-step-error.wb-step-on { background: var(--wb-del); }
.wb-error-banner { background: var(--wb-del); border: 1px solid #f87171; border-radius: 4px; padding: 4px 8px; }
.wb-error-detail { font-size: 11.5px; }
.wb-tree-diff { list-style: none; margin: 0 0 6px; padding: 0; }
.wb-tree-diff li { padding: 1px 4px; cursor: pointer; border-radius: 3px; }
.wb-tree-diff li:hover { background: var(--wb-bg2); }
.wb-td-tag { display: inline-block; min-width: 5.5em; font-size: 11px; font-weight: 600; }
.wb-td-added .wb-td-tag { color: #16a34a; } .wb-td-removed .wb-td-tag { color: #dc2626; }
.wb-td-moved .wb-td-tag { color: #3b82f6; } .wb-td-extent .wb-td-tag, .wb-td-kind .wb-td-tag { color: #d97706; }
.wb-textdiff-toggle { margin: 2px 0 4px; }
.wb-diff { font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); font-size: 12px; max-height: 460px; overflow: auto; }
.wb-diff-row { white-space: pre; }
.wb-diff-row.wb-add { background: var(--wb-add); }
.wb-diff-row.wb-del { background: var(--wb-del); }
.wb-diff-skip { color: var(--wb-fg2); font-style: italic; padding-left: 8em; }
.wb-tag { display: inline-block; width: 1.2em; color: var(--wb-fg2); }
/* the graph view: one graph or a before/after pair, then the clicked kernel */
.wb-gbar { display: flex; gap: 4px; }
.wb-gpanes { display: grid; grid-template-columns: minmax(0, 1fr); gap: 8px; }
.wb-gpanes.wb-gpanes-2 { grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); }
.wb-gpane { min-width: 0; }
.wb-gpane .wb-graphbox { max-height: 560px; }
.wb-graph-summary { margin: 0 0 4px; }
.wb-gsel polygon, .wb-gsel path, .wb-gsel ellipse { stroke: #dc2626; stroke-width: 3; }
.wb-glayer-label { text-decoration: underline; }
.wb-gdetail { margin: 6px 0 4px; padding: 4px 6px; border: 1px solid var(--wb-border); border-radius: 4px; }
.wb-gbinding { display: block; white-space: pre-wrap; word-break: break-all; font-size: 11.5px; margin: 2px 0; }
.wb-gkernel { margin-top: 4px; }
/* the cost heat map and the machine code panel */
.wb-tools { display: flex; gap: 6px; align-items: center; flex-wrap: wrap; margin-bottom: 4px; }
.wb-cost-metric { font-size: 11.5px; }
.wb-cost { margin-left: 8px; font-size: 11px; color: var(--wb-fg); border-radius: 3px; padding: 0 4px; font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace); }
.wb-mc { margin-top: 6px; }
.wb-mc-head { color: var(--wb-fg2); margin-bottom: 2px; }
.wb-mc-cols { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 8px; }
.wb-mc-col { min-width: 0; }
.wb-mc-list { max-height: 320px; overflow: auto; background: var(--wb-code-bg); border: 1px solid var(--wb-border);
  border-radius: 4px; position: relative; font-family: var(--jp-code-font-family, ui-monospace, Menlo, Consolas, monospace);
  font-size: 11.5px; line-height: 1.4; }
.wb-mc-line { white-space: pre; padding-right: 8px; width: max-content; min-width: 100%; color: var(--wb-fg2); }
.wb-mc-line.wb-mc-located { color: var(--wb-fg); cursor: pointer; }
.wb-mc-line.wb-mc-located:hover { background: var(--wb-bg2); }
.wb-mc-line.wb-hl { background: var(--wb-sel); }
.wb-bench-table { border-collapse: collapse; margin-bottom: 6px; font-size: 12px; }
.wb-bench-table th { text-align: left; color: var(--wb-fg2); padding: 1px 12px 1px 2px; }
.wb-bench-table td { padding: 1px 12px 1px 2px; }
.wb-bench-row { cursor: pointer; }
.wb-bench-row:hover { background: var(--wb-bg2); }
.wb-bench-on { background: rgba(59, 130, 246, 0.25); }
.wb-bench-link { color: var(--wb-accent); }
/* narrow output areas: one column, the script under the loop nest, the steps above the program */
@container (max-width: 820px) {
  .wb-gpanes.wb-gpanes-2 { grid-template-columns: minmax(0, 1fr); }
  .wb-panes { grid-template-columns: minmax(0, 1fr); }
  .wb-mc-cols { grid-template-columns: minmax(0, 1fr); }
  .wb-sched { flex-direction: column; }
  .wb-side { max-width: none; }
  .wb-steps { max-height: 160px; }
}
"""


def css() -> str:
    """The widgets' stylesheet: layout plus the pygments token colours (a dark style under a dark
    JupyterLab theme, which marks the body ``data-jp-theme-light="false"``)."""
    return (CSS_BASE + code_css(".wb-code-lines")
            + code_css('body[data-jp-theme-light="false"] .wb-code-lines', style="monokai"))


def legend_items() -> list[dict]:
    from .loop_tree import KIND_LABELS

    return [{"kind": k, "label": KIND_LABELS[k], "color": c} for k, c in KIND_COLORS.items()]


__all__ = ["ESM", "css", "legend_items"]
