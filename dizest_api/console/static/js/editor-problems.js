// What the editor finds wrong in the package as it is edited, at once (the API finds syntax
// errors: editor.js asks it as code is typed).
import { asList } from "./editor-doc.js";

// Problems found in the page, at once, as {flow, app, code, message, edge?}: what the server
// would refuse, and what it would only warn about. (Syntax errors come from the API.)
export function localProblems(pkg) {
  const problems = [];
  for (const [id, flow] of Object.entries(pkg.flow)) {
    const app = pkg.apps[flow.app_id];
    if (!app) {
      problems.push({ flow: id, app: flow.app_id, code: "unknown_app", message: `unknown app ${flow.app_id}` });
      continue;
    }
    const declared = new Set(asList(app.inputs).map((i) => i.name));
    for (const [name, spec] of Object.entries(flow.inputs || {})) {
      for (const c of asList(spec && spec.connections)) {
        const edge = { from: c.node, out: c.input, to: id, in: name };
        const source = pkg.flow[c.node];
        if (!declared.has(name)) problems.push({ flow: id, app: flow.app_id, code: "undeclared_input", message: `connection into input ${name}, which app ${app.title || flow.app_id} does not declare`, edge });
        else if (!source) problems.push({ flow: id, app: flow.app_id, code: "unknown_source", message: `connection from unknown flow ${c.node}`, edge });
        else if (pkg.apps[source.app_id] && !asList(pkg.apps[source.app_id].outputs).some((o) => o.name === c.input)) {
          problems.push({ flow: id, app: flow.app_id, code: "unknown_output", message: `connection from output ${c.input} of flow ${c.node}, which no longer exists`, edge });
        }
      }
    }
  }
  return problems;
}
