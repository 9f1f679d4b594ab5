// What a node shows of the panels' fields follows the typing without a redraw of the whole graph
// a keystroke (a redraw lays out all of dag1000's SVG): a flow's title goes to its node once the
// typing pauses; an app's nodes are drawn again when its UI (html or js) comes or goes, for their
// "UI" toggle (typing html into an app showed no toggle until a reload).
import { hasUI } from "./appui.js";
import { flowTitle } from "./flownames.js";

// A node's title follows the typing once it pauses: changed in the same frame as the title
// field, the SVG was laid out whole (~100 ms a keystroke on dag1000 in Chromium; ~20 ms alone).
const RETITLE_MS = 250;

export class NodeFollow {
  // doc: the Doc; canvas(): the canvas drawn now; redraw(): draws the graph again from doc.
  constructor(doc, canvas, redraw) {
    Object.assign(this, { doc, canvas, redraw });
    this.retitling = new Set();
    this.timer = 0;
  }

  title(id) {
    this.retitling.add(id);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      for (const one of this.retitling) this.canvas().retitle(one, this.titleOf(one));
      this.retitling.clear();
    }, RETITLE_MS);
  }

  titleOf(id) {
    const flow = this.doc.pkg.flow[id];
    return flow ? flowTitle(id, flow, this.doc.app(flow.app_id) || {}) : id;
  }

  // A change to `source`, "<app id>.<field>" (an app id may hold dots; a field does not).
  source(source) {
    const at = source.lastIndexOf(".");
    const appId = source.slice(0, at);
    if (!["html", "js"].includes(source.slice(at + 1)) || !this.doc.flowsOf(appId).length) return;
    if (hasUI(this.doc.app(appId)) !== Boolean(this.canvas().withUI?.has(appId))) this.redraw();
  }
}
