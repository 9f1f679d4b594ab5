// A flow variable's field, drawn by its inputtype as DIZEST's UI draws it: the run form of the
// workflow view and the editor's flow panel both use this one. A field shows the value the
// package stores as it is stored: a value a number, date or time field cannot hold (" 42 ",
// "abc") is shown as text rather than blanked, and a list's value that is not one of its options
// (or a list with none) is one more option. What a field gives is what DIZEST's UI would store
// (`typed`: a check's bool, else the text, numbers too); the engine reads it as it reads the
// stored value (dizest_core.runtime.convert_variable), so nothing here converts.
import { h } from "./dom.js";

const KINDS = { number: "number", password: "password", date: "date", time: "time" };

// A stored value as a field's text: a string as it is, none as "", anything else as JSON (7, [1,2]).
export const storedText = (value) => (value === null || value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value));

// A list's options, from its input's description ("key:label" or "key", comma or newline separated).
function listOptions(description) {
  return String(description || "").split(/[,\n]/).map((o) => o.trim()).filter(Boolean).map((o) => {
    const at = o.indexOf(":");
    return at < 0 ? [o, o] : [o.slice(0, at).trim(), o.slice(at + 1).trim()];
  });
}

function listInput(name, spec, text) {
  const options = listOptions(spec.description);
  const has = (key) => options.some(([k]) => k === key);
  const extra = [];
  if (!has("")) extra.push(h("option", { value: "" }, "")); // (cleared: the code's default)
  if (text !== "" && !has(text)) extra.push(h("option", { value: text, class: "stored", title: "the stored value, not one of the list's options" }, text));
  const select = h("select", { name }, extra, options.map(([key, label]) => h("option", { value: key }, label)));
  select.value = text;
  return select;
}

// The field of variable `spec` (an app's input) whose stored value is `value`, named `name`.
export function variableInput(name, spec, value) {
  const type = spec.inputtype || "text";
  const text = storedText(value);
  let input;
  if (type === "check") input = h("input", { type: "checkbox", name, checked: value === true || value === "true" });
  else if (type === "textarea") input = h("textarea", { name, rows: 3 }, text);
  else if (type === "list") input = listInput(name, spec, text);
  else {
    input = h("input", { type: KINDS[type] || "text", name, value: text, step: type === "number" ? "any" : null });
    if (input.value !== text) { // the browser's field would blank it: shown as the text it is
      input.type = "text";
      input.value = text;
      input.classList.add("as-text");
      input.title = `stored as text a ${type} field cannot hold; DIZEST reads it as it is`;
    }
  }
  input.dataset.inputtype = type;
  input.dataset.initial = String(typed(input)); // what it showed before any change (`changed`)
  return input;
}

// What DIZEST's UI would store from a field: a check's bool, else its text.
export const typed = (input) => (input.type === "checkbox" ? input.checked : input.value);

// Whether the user changed a field from what it was drawn with.
export const changed = (input) => String(typed(input)) !== input.dataset.initial;

// A field with its label: the variable's name and kind.
export const variableField = (spec, input) => h("label", { class: "field" }, h("span", {}, `${spec.name} `, h("small", { class: "muted" }, spec.inputtype || "text")), input);
