// Every page: the logout button, the current section in the header, and the sideways scroll
// cues of its tables (dom.js scrollCues).
import { leave, post } from "./api.js";
import { $, $$, scrollCues } from "./dom.js";

const section = location.pathname.split("/")[1];
for (const link of $$("[data-nav]")) link.classList.toggle("current", link.dataset.nav === section);

const logout = $("#logout");
if (logout) {
  logout.addEventListener("click", () => leave("/login", () => post("/auth/logout")));
}

for (const box of $$(".scroll-x")) scrollCues(box);
