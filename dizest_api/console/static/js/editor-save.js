// Saving the editor's workflow: a new version on the latest one as it was loaded (or last saved),
// one save at a time; an older version opened (?version=N) becomes the next version, changes and
// all, once the person says so; a conflict (409: someone saved since) offers a reload or a save
// as a copy; the flows the first layout placed are saved where they are drawn; leaving with
// unsaved changes asks first.
import { ApiError, post, problemLines, put } from "./api.js";
import { $, toast } from "./dom.js";

const TITLE_MAX = 200; // characters of a workflow's title (the API's limit)

export class EditorSave {
  // wfId: the workflow; doc: the Doc edited; workflow(): its record as last answered (version:
  // the one edited, latest_version, title); readOnly: nothing is saved; auto: flow id -> {x, y, px, py}, where the first layout
  // drew a flow whose own position (px, py) overlapped or was missing; name, appName: a flow's,
  // an app's id -> its name (problems); saved(fields): a save's answer (the record's new fields), once stored.
  constructor({ wfId, doc, workflow, readOnly, auto, name, appName, saved }) {
    Object.assign(this, { wfId, doc, workflow, readOnly, auto, name, appName, saved });
    this.saving = null; // the save under way (a promise of its success)
  }

  // One save at a time: a second asked meanwhile (Ctrl+S twice) waits for the first and then
  // saves what changed since, on the version the first made; what changed during a save stays
  // unsaved. Nothing changed: nothing is sent (nor stored by the API: no version is made twice).
  // An older version is saved as it is shown, changed or not, after a question (versions up to
  // the latest stay in the history).
  async save() {
    if (this.readOnly) return false;
    const { version, latest_version: latest } = this.workflow();
    const older = version < latest;
    if (!this.saving && !this.doc.dirty && !older) return (toast(`No changes to save: this is version ${version}`), true);
    if (this.saving) {
      const ok = await this.saving;
      return ok && (!this.doc.dirty || this.save());
    }
    const what = this.doc.dirty ? `Version ${version} with your changes` : `Version ${version}`;
    if (older && !confirm(`${what} becomes the latest, saved as version ${latest + 1}. Versions 1 to ${latest} stay as they are. Save it?`)) return false;
    this.saving = this.putVersion();
    try {
      return await this.saving;
    } finally {
      this.saving = null;
    }
  }

  async putVersion() {
    const doc = this.doc;
    this.placeAuto();
    const sent = JSON.stringify(doc.pkg); // what is stored (put sends it as it is now), whatever changes meanwhile
    try {
      const answer = await put(`/workflows/${encodeURIComponent(this.wfId)}`, { package: doc.pkg, base_version: this.workflow().latest_version });
      const { stored, warnings = [], ...fields } = answer;
      doc.saved(sent);
      this.saved(fields);
      // Code that does not compile is saved all the same (work in progress); its flows fail when run.
      const broken = warnings.filter((p) => p.code === "syntax_error").length;
      const note = broken ? ` (syntax errors in ${broken} app(s): their flows fail when run)` : "";
      toast(stored === false ? `No changes to save: this is version ${answer.version}` : `Saved as version ${answer.version}${note}`);
      return true;
    } catch (exc) {
      if (exc instanceof ApiError && exc.status === 409) {
        $("#conflict-text").textContent = `${exc.message}.`;
        $("#conflict").hidden = false;
      } else toast(problemLines(exc, this.name, this.appName).join("\n"), "error");
      return false;
    }
  }

  // The flows drawn where the first layout put them are saved there (not at their own
  // overlapping or missing positions): a reload then shows what was saved. Not an undo step.
  placeAuto() {
    for (const [id, a] of this.auto) {
      const flow = this.doc.pkg.flow[id];
      if (flow && flow.pos_x === a.px && flow.pos_y === a.py) Object.assign(flow, { pos_x: Math.round(a.x), pos_y: Math.round(a.y) });
    }
  }

  async saveCopy() {
    const suffix = " (copy)";
    const title = [...String(this.workflow().title)].slice(0, TITLE_MAX - suffix.length).join("") + suffix;
    try {
      this.placeAuto();
      const made = await post("/workflows", { title, package: this.doc.pkg });
      this.doc.saved();
      location.assign(`/workflows/${encodeURIComponent(made.id)}/edit`);
    } catch (exc) {
      toast(problemLines(exc, this.name, this.appName).join("\n"), "error");
    }
  }

  // The conflict's buttons (reload: the changes dropped; a copy), and the question on leaving.
  bind() {
    $("#conflict-reload").addEventListener("click", () => {
      this.doc.saved();
      location.reload();
    });
    $("#conflict-copy").addEventListener("click", () => this.saveCopy());
    window.addEventListener("beforeunload", (event) => {
      if (!this.doc.dirty) return;
      event.preventDefault();
      event.returnValue = "";
    });
  }
}
