// Every page: the logout button and the current section in the header.
import { leave, post } from "./api.js";
import { $, $$ } from "./dom.js";

const section = location.pathname.split("/")[1];
for (const link of $$("[data-nav]")) link.classList.toggle("current", link.dataset.nav === section);

const logout = $("#logout");
if (logout) {
  logout.addEventListener("click", () => leave("/login", () => post("/auth/logout")));
}
