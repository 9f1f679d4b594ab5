// The login form: posts to the public login API; a wrong password or a lock-out is shown as is.
import { api } from "./api.js";
import { $ } from "./dom.js";

const form = $("#login-form");
const error = $("#login-error");

function target() {
  const next = new URLSearchParams(location.search).get("next") || "/workflows";
  // Only a page of this site, as the browser itself resolves it: never an open redirect
  // ("//evil", "/\\evil" and the like resolve to another origin).
  if (!next.startsWith("/")) return "/workflows";
  const url = new URL(next, location.origin);
  // Its path as the server reads it (percent-decoded): "/.//evil" resolves to the path
  // "//evil", which, given back as a relative URL, is another site's; "/%61pi" is "/api".
  let path;
  try {
    path = decodeURIComponent(url.pathname);
  } catch {
    return "/workflows";
  }
  // and a console page: the API's answers are JSON, not a page to land on
  const page = url.origin === location.origin && !path.startsWith("//") && !/^\/(dizest\/)?api(\/|$)/.test(path);
  return page ? url.href : "/workflows"; // absolute: it can only name this origin
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const body = { username: $("#username").value, password: $("#password").value };
  try {
    await api("POST", "/auth/login", body);
    location.assign(target());
  } catch (exc) {
    error.textContent =
      exc.code === "too_many_attempts"
        ? `Too many failed attempts: try again in ${exc.details?.retry_after ?? "a few"} seconds.`
        : exc.status === 401
          ? "Wrong user name or password."
          : exc.message;
    error.hidden = false;
  }
});
$("#login-submit").disabled = false; // (the page sends it disabled: see login.html)
