// The Files page: the caller's drive, as DIZEST's drive panel. A folder's entries (folders first)
// under its breadcrumbs; open a folder (the address follows it: /files/<path>, each part encoded),
// download a file, upload files (their picker, a folder's picker or a drop: one file at a time,
// each with its progress), new folder, rename or move, delete; and the drive's usage against its
// quotas. All of it through the public API (/api/v1/files: docs/files.md), whose words an error
// keeps. A name is text wherever it is shown, never HTML.
import { answered, del, patch, post, request, sendBlob } from "./api.js";
import { $, bytes, h, onDrop, toast, whenCell } from "./dom.js";

let folder = ""; // the folder shown: its path in the drive, "" for the top
let entries = []; // its entries, as last listed
let loads = 0; // the newest listing asked for (an older answer is dropped)
const queue = []; // uploads not started yet: {path, file, bar, state, row}
let uploading = false;

// A path as the API and this page take it: its parts, no empty one.
const tidy = (path) => path.split("/").filter(Boolean).join("/");
const join = (...paths) => tidy(paths.join("/"));
const baseName = (path) => path.split("/").pop();
// A drive path in an address: each part encoded (a name may hold spaces, #, ?, % or any letter).
const filesUrl = (path) => (path ? `/files/${path.split("/").map(encodeURIComponent).join("/")}` : "/files");
const fileHref = (path) => `/api/v1${filesUrl(path)}`;

// The folder the address names; null for a malformed escape.
function folderInUrl() {
  const parts = location.pathname.replace(/^\/files\/?/, "").split("/");
  try {
    return tidy(parts.map(decodeURIComponent).join("/"));
  } catch (exc) {
    return null;
  }
}

// A folder's listing; null when `path` is a file (whose bytes are not read).
async function listing(path) {
  const answer = await request("GET", fileHref(path));
  if (answer.ok && !(answer.headers.get("Content-Type") || "").startsWith("application/json")) {
    answer.body?.cancel();
    return null;
  }
  return answered(answer, filesUrl(path));
}

function problems(lines) {
  const box = $("#files-problems");
  box.replaceChildren(...lines.map((line) => h("div", {}, line)));
  box.hidden = lines.length === 0;
}

async function load() {
  const mine = ++loads;
  crumbs();
  let found;
  try {
    found = await listing(folder);
  } catch (exc) {
    if (mine !== loads) return;
    showEntries([], false);
    problems([exc.message]);
    return;
  }
  if (mine !== loads) return;
  if (found === null) return fileInUrl();
  entries = found.items;
  showEntries(entries, found.truncated);
  usage(found.usage);
}

// The address named a file: its folder is shown, with the file's download.
function fileInUrl() {
  const file = folder;
  folder = tidy(file.split("/").slice(0, -1).join("/"));
  history.replaceState(null, "", filesUrl(folder));
  load();
  problems([h("span", {}, `${file} is a file, not a folder: `, h("a", { href: fileHref(file), download: "" }, "download it"))]);
}

function go(path, remember = true) {
  folder = path;
  if (remember) history.pushState(null, "", filesUrl(path));
  problems([]);
  load();
}

// A link to a folder of this page: opened here, unless the click asks for a new tab or window.
function folderLink(path, text, attrs = {}) {
  const open = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
    event.preventDefault();
    go(path);
  };
  return h("a", { href: filesUrl(path), onclick: open, ...attrs }, text);
}

function crumbs() {
  const parts = folder ? folder.split("/") : [];
  const here = (text) => h("span", { "aria-current": "page" }, text);
  const trail = [parts.length ? folderLink("", "Your drive") : here("Your drive")];
  parts.forEach((part, i) => {
    trail.push(h("span", { class: "sep" }, "/"));
    trail.push(i === parts.length - 1 ? here(part) : folderLink(parts.slice(0, i + 1).join("/"), part));
  });
  $("#crumbs").replaceChildren(...trail);
  document.title = `${parts.length ? `${parts[parts.length - 1]} · ` : ""}Files · dizest`;
}

const byName = (a, b) => a.name.localeCompare(b.name, undefined, { numeric: true, sensitivity: "base" }) || (a.name < b.name ? -1 : 1);

function showEntries(items, truncated) {
  const isFolder = (e) => e.type === "directory";
  const sorted = [...items.filter(isFolder).sort(byName), ...items.filter((e) => !isFolder(e)).sort(byName)];
  $("#files-rows").replaceChildren(...sorted.map(entryRow));
  $("#files-empty").hidden = sorted.length > 0 || truncated;
  $("#files-truncated").hidden = !truncated;
}

function entryRow(entry) {
  const folderish = entry.type === "directory";
  const name = folderish
    ? folderLink(entry.path, entry.name, { class: "entry folder" })
    : h("a", { href: fileHref(entry.path), class: "entry file", download: "" }, entry.name);
  const size = folderish ? "" : h("span", { title: `${entry.size.toLocaleString()} bytes` }, bytes(entry.size));
  return h(
    "tr",
    { dataset: { path: entry.path, type: entry.type } },
    h("td", {}, name),
    h("td", { class: "num size" }, size),
    h("td", { class: "modified" }, whenCell(entry.modified)),
    h(
      "td",
      { class: "actions" },
      folderish ? null : h("a", { href: fileHref(entry.path), class: "button download", download: "" }, "Download"),
      h("button", { type: "button", class: "rename", onclick: () => rename(entry) }, "Rename"),
      h("button", { type: "button", class: "danger delete", onclick: () => remove(entry) }, "Delete"),
    ),
  );
}

function usage(used) {
  const bar = $("#files-usage-bar");
  bar.max = used.quota_bytes;
  bar.value = Math.min(used.bytes, used.quota_bytes);
  const attached = used.attached_files ? ` (of them, files attached to your runs: ${bytes(used.attached_bytes)}, ${used.attached_files.toLocaleString()})` : "";
  const count = `${used.files.toLocaleString()} of ${used.quota_files.toLocaleString()} files and folders`;
  $("#files-usage-text").textContent = `${bytes(used.bytes)} of ${bytes(used.quota_bytes)} used · ${count}${attached}`;
}

// -- changes --------------------------------------------------------------------------------
async function act(done, call) {
  try {
    await call();
    toast(done);
  } catch (exc) {
    toast(exc.message, "error");
  }
  await load();
}

function makeFolder() {
  const name = prompt(`New folder in ${folder || "your drive"}:`);
  const path = name && join(folder, name);
  if (path && path !== folder) act(`Made ${name}`, () => post(filesUrl(path)));
}

function rename(entry) {
  const to = prompt(`Rename or move ${entry.name}: its new path in your drive`, entry.path);
  const path = to && tidy(to);
  if (path && path !== entry.path) act(`Moved ${entry.name} to ${path}`, () => patch(filesUrl(entry.path), { to: path }));
}

function remove(entry) {
  const what = entry.type === "directory" ? `the folder ${entry.name} and everything in it` : entry.name;
  if (confirm(`Delete ${what}?`)) act(`Deleted ${entry.name}`, () => del(filesUrl(entry.path)));
}

// -- uploads --------------------------------------------------------------------------------
// Queue `files` ([path in the drive, File]): sent one at a time, as a user's request bodies at
// once are few (DIZEST_USER_BODIES); a file already there is replaced if the person says so.
function upload(files) {
  const taken = new Set(entries.filter((e) => e.type === "file").map((e) => e.path));
  const replacing = files.filter(([path]) => taken.has(path));
  if (replacing.length && !confirm(`Replace ${replacing.map(([path]) => baseName(path)).join(", ")}?`)) {
    files = files.filter(([path]) => !taken.has(path));
  }
  for (const [path, file] of files) {
    const bar = h("progress", { max: Math.max(file.size, 1), value: 0 });
    const state = h("span", { class: "muted" }, "waiting");
    const row = h("li", { dataset: { path } }, h("span", { class: "upload-name" }, path), bar, state);
    $("#uploads").append(row);
    queue.push({ path, file, bar, state, row });
  }
  $("#uploads").hidden = queue.length === 0 && !uploading;
  if (!uploading) sendAll();
}

async function sendAll() {
  uploading = true;
  const failed = [];
  let shown = Date.now();
  while (queue.length) {
    const item = queue.shift();
    const progress = (sent, total) => {
      item.bar.value = sent;
      item.state.textContent = `${Math.floor((100 * sent) / Math.max(total, 1))}%`;
    };
    try {
      await sendBlob("PUT", filesUrl(item.path), item.file, progress);
    } catch (exc) {
      failed.push(`${item.path}: not uploaded: ${refusal(exc, item.file)}`);
    }
    item.row.remove();
    if (Date.now() - shown > 1000) {
      shown = Date.now();
      await load(); // a long queue shows what is in (and the usage) as it goes
    }
  }
  uploading = false;
  $("#uploads").hidden = true;
  problems(failed);
  await load();
}

// Why an upload was refused: the API's words, and the byte counts they hold as a person reads them.
function refusal(exc, file) {
  const { free, limit } = exc.details || {};
  if (typeof free === "number") return `${exc.message} (${bytes(free)} free; the file is ${bytes(file.size)})`;
  if (typeof limit === "number") return `${exc.message} (at most ${bytes(limit)}; the file is ${bytes(file.size)})`;
  return exc.message;
}

// A drop: its files; a folder dropped is named, not read (the folder picker uploads one).
function dropped(data) {
  const files = [];
  const folders = [];
  for (const item of data.items || []) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry?.isDirectory) folders.push(entry.name);
    else files.push(item.getAsFile());
  }
  if (folders.length) toast(`Not uploaded: ${folders.join(", ")} (a folder: use Upload a folder)`, "error");
  upload(files.filter(Boolean).map((file) => [join(folder, file.name), file]));
}

function picked(event) {
  const files = [...event.target.files].map((file) => [join(folder, file.webkitRelativePath || file.name), file]);
  event.target.value = "";
  upload(files);
}

$("#files-mkdir").addEventListener("click", makeFolder);
$("#files-input").addEventListener("change", picked);
$("#files-folder-input").addEventListener("change", picked);
onDrop($("#dropzone"), dropped);
window.addEventListener("popstate", () => go(folderInUrl() ?? "", false));
const start = folderInUrl();
if (start === null) {
  problems(["This address names no folder (a malformed escape): your drive's top is shown."]);
  history.replaceState(null, "", "/files");
}
folder = start ?? "";
load();
