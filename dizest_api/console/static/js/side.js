// The side panel of the split views (the workflow view, the run view, the editor). Its button
// (#side-toggle) folds it away to give the canvas the room, a choice of this browser's kept in
// localStorage for every view. On a phone the panel lies under the canvas (console.css, which
// then sets --stacked on the page's main box): a flow the user picks brings its panel up.
import { h } from "./dom.js";

const KEY = "dizest.side.folded";
const main = document.getElementById("main");
const side = document.querySelector("main.split > aside.side");

function kept() {
  try {
    return localStorage.getItem(KEY) === "1";
  } catch (exc) {
    return false; // storage refused (a private window): unfolded
  }
}

function fold(folded) {
  main.classList.toggle("side-folded", folded);
  toggle.setAttribute("aria-expanded", String(!folded));
  toggle.title = folded ? "Show the side panel" : "Hide the side panel (the canvas takes its room)";
  toggle.setAttribute("aria-label", folded ? "Show the side panel" : "Hide the side panel");
  toggle.textContent = folded ? "«" : "»";
}

const toggle = h("button", { type: "button", id: "side-toggle", class: "side-toggle", "aria-controls": "side" });
if (side) {
  side.id ||= "side";
  side.prepend(toggle);
  fold(kept());
  toggle.addEventListener("click", () => {
    const folded = !main.classList.contains("side-folded");
    fold(folded);
    try {
      if (folded) localStorage.setItem(KEY, "1");
      else localStorage.removeItem(KEY);
    } catch (exc) {
      // storage full or refused: the choice holds for this page
    }
  });
  document.getElementById("graph")?.addEventListener("flowpick", () => {
    if (getComputedStyle(main).getPropertyValue("--stacked").trim() === "1") side.scrollIntoView({ block: "start", behavior: "smooth" });
  });
}
