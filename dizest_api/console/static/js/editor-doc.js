// The workflow being edited: the package JSON exactly as loaded, changed in place by the
// operations below, so every field the editor does not know (DIZEST's UI metadata, `api`, `html`,
// top-level keys) is saved back untouched. Each operation is one undo step (a JSON snapshot);
// `dirty`: the package differs from the one last saved (its JSON, kept to compare with);
// edges live in `flow.inputs[name].connections` (what the engine reads) and are mirrored in the
// source's `flow.outputs[name].connections` (what DIZEST's Drawflow editor keeps).

const ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789";
const COALESCE_MS = 1500; // typing in one field is one undo step until it pauses this long

export function newAppId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return [...bytes].map((b, i) => (i === 0 ? ID_CHARS[b % 26] : ID_CHARS[b % 36])).join("");
}

export const asList = (value) => (Array.isArray(value) ? value : []);

// A new flow of app `appId` at (`x`, `y`) in `pkg` (within a change): its id.
function placeFlow(pkg, appId, x, y) {
  const app = pkg.apps[appId] || {};
  let id = `${appId}-${Date.now()}`;
  while (pkg.flow[id]) id += "1";
  const data = {};
  const inputs = {};
  for (const spec of asList(app.inputs)) {
    if (spec.type === "variable") data[spec.name] = spec.default ?? (spec.inputtype === "check" ? false : "");
    else inputs[spec.name] = { connections: [] };
  }
  const outputs = Object.fromEntries(asList(app.outputs).map((o) => [o.name, { connections: [] }]));
  const rows = Math.max(Object.keys(inputs).length, asList(app.outputs).length, 1);
  pkg.flow[id] = {
    id, app_id: appId, active: true, title: "", description: "", class: "", name: "", typenode: false,
    pos_x: Math.round(x), pos_y: Math.round(y), width: 260, height: 60 + rows * 16, data, inputs, outputs,
  };
  return id;
}

export class Doc {
  constructor(pkg, onChange) {
    this.pkg = pkg;
    this.pkg.apps ||= {};
    this.pkg.flow ||= {};
    this.onChange = onChange;
    this.undoStack = [];
    this.redoStack = [];
    this.last = { label: null, at: 0 };
    this.savedText = JSON.stringify(this.pkg);
    this.dirty = false;
    this.readOnly = false; // the caller may not save: nothing changes
  }

  // Run `fn(pkg)` as one undoable step; a repeated `label` within COALESCE_MS joins the last step.
  change(label, fn, { coalesce = false } = {}) {
    if (this.readOnly) return false;
    const now = performance.now();
    const join = coalesce && this.last.label === label && now - this.last.at < COALESCE_MS;
    const before = join ? null : JSON.stringify(this.pkg);
    const answer = fn(this.pkg);
    if (answer === false) return false; // refused: nothing changed
    if (before !== null) {
      this.undoStack.push(before);
      if (this.undoStack.length > 200) this.undoStack.shift();
    }
    this.redoStack = [];
    this.last = { label, at: now };
    // A step is compared whole, as its snapshot is taken; a keystroke that joins one is not (a
    // 1,000-flow package each keystroke): it counts as a change until the step is undone.
    this.dirty = join || JSON.stringify(this.pkg) !== this.savedText;
    this.onChange(label);
    return answer;
  }

  undo() {
    return this.swap(this.undoStack, this.redoStack, "undo");
  }

  redo() {
    return this.swap(this.redoStack, this.undoStack, "redo");
  }

  swap(from, to, label) {
    if (!from.length || this.readOnly) return false;
    to.push(JSON.stringify(this.pkg));
    const text = from.pop();
    this.pkg = JSON.parse(text);
    this.last = { label, at: 0 };
    this.dirty = text !== this.savedText;
    this.onChange(label);
    return true;
  }

  // The package whose JSON is `text` (default: now's) is stored: clean unless changed since it
  // was sent; the next keystroke starts a step of its own (its undo comes back here).
  saved(text = JSON.stringify(this.pkg)) {
    this.savedText = text;
    this.dirty = JSON.stringify(this.pkg) !== text;
    this.last = { label: null, at: 0 };
  }

  app(id) {
    return this.pkg.apps[id];
  }

  // --- flows ---------------------------------------------------------------------------------
  addFlow(appId, x, y, pluginApp = null) {
    return this.change("add flow", (pkg) => {
      if (!pkg.apps[appId] && pluginApp) pkg.apps[appId] = structuredClone(pluginApp); // self-contained, as DIZEST
      return placeFlow(pkg, appId, x, y);
    });
  }

  removeFlow(id) {
    return this.change("remove flow", (pkg) => {
      delete pkg.flow[id];
      for (const flow of Object.values(pkg.flow)) {
        for (const side of [flow.inputs, flow.outputs]) {
          for (const spec of Object.values(side || {})) {
            if (spec && Array.isArray(spec.connections)) spec.connections = spec.connections.filter((c) => c.node !== id);
          }
        }
      }
    });
  }

  // A drag's drop is a step of its own; a flow's `nudge`s (Shift+arrow, a key's step each) are one
  // step until they pause COALESCE_MS, as typing is: one undo takes back the whole move.
  move(id, x, y, { nudge = false } = {}) {
    return this.change(nudge ? `nudge ${id}` : "move", (pkg) => {
      Object.assign(pkg.flow[id], { pos_x: Math.round(x), pos_y: Math.round(y) });
    }, { coalesce: nudge });
  }

  setActive(id, active) {
    return this.change("active", (pkg) => {
      pkg.flow[id].active = active;
      delete pkg.flow[id].inactive; // 3.x flag: the 4.x one now says it
    });
  }

  setFlowTitle(id, title) {
    return this.change(`title ${id}`, (pkg) => void (pkg.flow[id].title = title), { coalesce: true });
  }

  setVariable(id, name, value) {
    return this.change(`var ${id}.${name}`, (pkg) => {
      pkg.flow[id].data ||= {};
      pkg.flow[id].data[name] = value;
    }, { coalesce: true });
  }

  // --- edges ---------------------------------------------------------------------------------
  edges() {
    const edges = [];
    for (const [to, flow] of Object.entries(this.pkg.flow)) {
      for (const [name, spec] of Object.entries(flow.inputs || {})) {
        for (const c of asList(spec && spec.connections)) edges.push({ from: c.node, out: c.input, to, in: name });
      }
    }
    return edges;
  }

  // The flows from `start` to `goal` along edges, or null: connecting goal -> start would close it.
  path(start, goal) {
    const next = new Map();
    for (const e of this.edges()) (next.get(e.from) || next.set(e.from, []).get(e.from)).push(e.to);
    const parent = new Map([[start, null]]);
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const id = queue[i];
      if (id === goal) {
        const path = [];
        for (let at = goal; at !== null; at = parent.get(at)) path.unshift(at);
        return path;
      }
      for (const child of next.get(id) || []) {
        if (!parent.has(child)) {
          parent.set(child, id);
          queue.push(child);
        }
      }
    }
    return null;
  }

  // Connect `from.out` to `to.in`; a cycle is refused with its path ({cycle: [to, ..., from, to]}).
  connect(from, out, to, input) {
    if (from === to) return { cycle: [from, from] };
    const back = this.path(to, from);
    if (back) return { cycle: [...back, to] };
    const exists = asList(this.pkg.flow[to]?.inputs?.[input]?.connections).some((c) => c.node === from && c.input === out);
    if (exists) return { ok: true };
    this.change("connect", (pkg) => {
      const target = pkg.flow[to];
      target.inputs ||= {};
      target.inputs[input] ||= { connections: [] };
      target.inputs[input].connections = [...asList(target.inputs[input].connections), { node: from, input: out }];
      const source = pkg.flow[from];
      source.outputs ||= {};
      source.outputs[out] ||= { connections: [] };
      source.outputs[out].connections = [...asList(source.outputs[out].connections), { node: to, output: input }];
    });
    return { ok: true };
  }

  disconnect(from, out, to, input) {
    return this.change("disconnect", (pkg) => {
      const spec = pkg.flow[to]?.inputs?.[input];
      if (spec) spec.connections = asList(spec.connections).filter((c) => !(c.node === from && c.input === out));
      const mirror = pkg.flow[from]?.outputs?.[out];
      if (mirror) mirror.connections = asList(mirror.connections).filter((c) => !(c.node === to && c.output === input));
    });
  }

  // --- apps ----------------------------------------------------------------------------------
  // A new app; with `at` ({x, y}) a flow of it there too, in the same undo step.
  createApp(title, at = null) {
    return this.change("new app", (pkg) => {
      const id = newAppId();
      pkg.apps[id] = { id, title, version: "1.0.0", description: "", cdn: { js: [], css: [] }, inputs: [], outputs: [], code: "", api: "", html: "", js: "", css: "" };
      if (at) placeFlow(pkg, id, at.x, at.y);
      return id;
    });
  }

  duplicateApp(appId) {
    return this.change("duplicate app", (pkg) => {
      const id = newAppId();
      pkg.apps[id] = { ...structuredClone(pkg.apps[appId]), id, title: `${pkg.apps[appId].title || appId} (copy)` };
      return id;
    });
  }

  renameApp(appId, title) {
    return this.change(`app title ${appId}`, (pkg) => void (pkg.apps[appId].title = title), { coalesce: true });
  }

  setCode(appId, code) {
    return this.change(`code ${appId}`, (pkg) => void (pkg.apps[appId].code = code), { coalesce: true });
  }

  // One of an app's other sources: its `api` functions, or its UI's html, js or css.
  setSource(appId, field, text) {
    return this.change(`source ${appId}.${field}`, (pkg) => void (pkg.apps[appId][field] = text), { coalesce: true });
  }

  flowsOf(appId) {
    return Object.values(this.pkg.flow).filter((f) => f.app_id === appId);
  }

  addInput(appId, spec) {
    return this.change("add input", (pkg) => {
      const app = pkg.apps[appId];
      if (asList(app.inputs).some((i) => i.name === spec.name)) return false;
      app.inputs = [...asList(app.inputs), spec];
      for (const flow of this.flowsOf(appId)) {
        if (spec.type === "variable") (flow.data ||= {})[spec.name] ??= spec.default ?? "";
        else (flow.inputs ||= {})[spec.name] ||= { connections: [] };
      }
    });
  }

  updateInput(appId, index, fields) {
    return this.change(`input ${appId}.${index}`, (pkg) => void Object.assign(pkg.apps[appId].inputs[index], fields), { coalesce: true });
  }

  // Rename an input: the flows' connections (and values) into it follow the new name.
  renameInput(appId, oldName, name) {
    return this.change("rename input", (pkg) => {
      const app = pkg.apps[appId];
      if (!name || asList(app.inputs).some((i) => i.name === name)) return false;
      const spec = asList(app.inputs).find((i) => i.name === oldName);
      spec.name = name;
      for (const flow of this.flowsOf(appId)) {
        renameKey(flow.inputs, oldName, name);
        renameKey(flow.data, oldName, name);
        for (const c of asList(flow.inputs?.[name]?.connections)) {
          for (const m of asList(pkg.flow[c.node]?.outputs?.[c.input]?.connections)) if (m.node === flow.id && m.output === oldName) m.output = name;
        }
      }
    });
  }

  removeInput(appId, name) {
    return this.change("remove input", (pkg) => {
      const app = pkg.apps[appId];
      app.inputs = asList(app.inputs).filter((i) => i.name !== name);
      for (const flow of this.flowsOf(appId)) {
        unlinkInput(pkg, flow, name);
        if (flow.data) delete flow.data[name];
      }
    });
  }

  // An input becomes a variable (its connections go, their mirrors in the sources too) or an
  // output's input (its value goes).
  setInputType(appId, index, type) {
    return this.change("input type", (pkg) => {
      const spec = pkg.apps[appId].inputs[index];
      spec.type = type;
      for (const flow of this.flowsOf(appId)) {
        if (type === "variable") {
          unlinkInput(pkg, flow, spec.name);
          (flow.data ||= {})[spec.name] ??= spec.default ?? "";
        } else (flow.inputs ||= {})[spec.name] ||= { connections: [] };
      }
    });
  }

  moveInput(appId, index, step) {
    return this.moveIn(appId, "inputs", index, step);
  }

  moveOutput(appId, index, step) {
    return this.moveIn(appId, "outputs", index, step);
  }

  moveIn(appId, key, index, step) {
    const list = asList(this.pkg.apps[appId][key]);
    const to = index + step;
    if (to < 0 || to >= list.length) return false;
    return this.change(`reorder ${key}`, (pkg) => {
      const items = pkg.apps[appId][key];
      [items[index], items[to]] = [items[to], items[index]];
    });
  }

  addOutput(appId, name) {
    return this.change("add output", (pkg) => {
      const app = pkg.apps[appId];
      if (!name || asList(app.outputs).some((o) => o.name === name)) return false;
      app.outputs = [...asList(app.outputs), { name }];
      for (const flow of this.flowsOf(appId)) (flow.outputs ||= {})[name] ||= { connections: [] };
    });
  }

  // Rename an output: every connection from it, in every flow of the app, follows.
  renameOutput(appId, oldName, name) {
    return this.change("rename output", (pkg) => {
      const app = pkg.apps[appId];
      if (!name || asList(app.outputs).some((o) => o.name === name)) return false;
      asList(app.outputs).find((o) => o.name === oldName).name = name;
      const users = new Set(this.flowsOf(appId).map((f) => f.id));
      for (const flow of users) renameKey(pkg.flow[flow].outputs, oldName, name);
      for (const flow of Object.values(pkg.flow)) {
        for (const spec of Object.values(flow.inputs || {})) {
          for (const c of asList(spec && spec.connections)) if (users.has(c.node) && c.input === oldName) c.input = name;
        }
      }
    });
  }

  // Remove an output; connections from it stay, flagged, until the person removes them.
  removeOutput(appId, name) {
    return this.change("remove output", (pkg) => {
      const app = pkg.apps[appId];
      app.outputs = asList(app.outputs).filter((o) => o.name !== name);
    });
  }
}

function renameKey(obj, from, to) {
  if (!obj || !(from in obj)) return;
  const entries = Object.entries(obj).map(([k, v]) => [k === from ? to : k, v]); // keeps the order
  for (const k of Object.keys(obj)) delete obj[k];
  Object.assign(obj, Object.fromEntries(entries));
}

// Drop the connections into `flow`'s input `name` and their mirrors in the source flows.
function unlinkInput(pkg, flow, name) {
  for (const c of asList(flow.inputs?.[name]?.connections)) {
    const mirror = pkg.flow[c.node]?.outputs?.[c.input];
    if (mirror) mirror.connections = asList(mirror.connections).filter((m) => !(m.node === flow.id && m.output === name));
  }
  if (flow.inputs) delete flow.inputs[name];
}
