"""The Files page (/files) in Chromium against a real `dizest serve`: a user's drive, a folder at
a time. What the page shows is checked against what the API stored: an upload (picker or drop)
is in the drive byte for byte, a download gives those bytes back, a folder made, entered, moved
or deleted on the page is so in the API; odd names (spaces, #, ?, %, accents, markup) travel in
addresses and stay text; a second user sees none of it; a refused upload says the API's words."""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.test_body_slots import SLOTS, held
from tests.api.test_slow_clients import Client, trickling
from tests.conftest import wait_for
from tests.console.conftest import USER_PASSWORD, Console, bearer, log_in
from tests.serve_process import PASSWORD, serving

MIB = 1 << 20
QUOTA = 4 * MIB  # each user's drive: small, so a test passes it
MAX_UPLOAD = 6 * MIB  # per request: over the quota, so each limit can be met alone
ODD = "a #?%b é"  # a folder's name: every part of it means something else in a URL
READS_DRIVE = (  # a flow that reads data/in.txt through the drive (the walkthrough's failed run)
    "text = open(dizest.drive().abspath('data/in.txt')).read()\ndizest.output('text', text)\n"
)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("files")
    limits = {
        "drive_quota_bytes": str(QUOTA),
        "max_upload_bytes": str(MAX_UPLOAD),
        "max_request_bytes": str(MIB),
    }
    with serving(tmp, **limits) as served:
        yield Console(served, tmp, bearer(served.base, "admin", PASSWORD, ["read", "run", "admin"]))


def stored(console: Console, name: str, path: str) -> bytes | None:
    """The bytes of `path` in `name`'s drive, through the API (None: no such file)."""
    quoted = urllib.parse.quote(path)
    request = urllib.request.Request(f"{console.base}/api/v1/files/{quoted}", headers=console.token(name))  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bytes(answer.read())
    except urllib.error.HTTPError as exc:
        assert exc.code == 404, exc.code
        return None


def listed(console: Console, name: str, folder: str = "") -> dict[str, str]:
    """path -> type of the entries of `folder` in `name`'s drive, through the API."""
    where = f"/files/{urllib.parse.quote(folder)}" if folder else "/files"
    return {i["path"]: i["type"] for i in console.api("GET", where, name=name)["items"]}


def user_page(browser: Any, console: Console, name: str) -> Any:
    console.user(name)
    page = log_in(browser, console.base, name, accept_downloads=True, locale="en-US")
    page.goto("/files")
    expect(page.locator("#files-usage-text")).to_contain_text("used")
    return page


def row(page: Any, path: str) -> Any:
    return page.locator(f'#files-rows tr[data-path="{path}"]')


def drop(page: Any, name: str, content: bytes) -> None:
    """Drop a file on the page, as a browser does: a drop event whose DataTransfer holds it."""
    data = page.evaluate_handle(
        """([name, b64]) => {
             const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
             const data = new DataTransfer();
             data.items.add(new File([bytes], name));
             return data;
           }""",
        [name, base64.b64encode(content).decode()],
    )
    page.dispatch_event("#dropzone", "drop", {"dataTransfer": data})


def answer(page: Any, reply: str | None) -> None:
    """Answer the page's next dialog (prompt or confirm): accept with `reply`, or dismiss."""
    page.once("dialog", lambda d: d.accept(reply) if reply is not None else d.dismiss())


def test_upload_by_picker_and_by_drop_and_download_the_same_bytes(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    page = user_page(browser, console, "fiona")
    expect(page.locator("#files-empty")).to_be_visible()
    picked, dropped = os.urandom(150 * 1024), os.urandom(3000) + bytes(range(256))
    (tmp_path / "report 1.bin").write_bytes(picked)
    page.set_input_files("#files-input", str(tmp_path / "report 1.bin"))
    expect(row(page, "report 1.bin").locator(".size")).to_have_text("150 KiB")
    assert stored(console, "fiona", "report 1.bin") == picked
    drop(page, "dropped ü.csv", dropped)
    expect(row(page, "dropped ü.csv").locator(".size")).to_have_text("3.2 KiB")
    assert stored(console, "fiona", "dropped ü.csv") == dropped
    expect(row(page, "dropped ü.csv").locator(".size span")).to_have_attribute(
        "title", "3,256 bytes"
    )
    for path, content in (("report 1.bin", picked), ("dropped ü.csv", dropped)):
        with page.expect_download() as download:
            row(page, path).locator("a.download").click()
        assert download.value.suggested_filename == path
        assert Path(download.value.path()).read_bytes() == content
    page.context.close()


def test_a_folder_made_entered_uploaded_into_and_left_by_its_breadcrumb(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    page = user_page(browser, console, "gina")
    answer(page, "data")
    page.click("#files-mkdir")
    expect(row(page, "data")).to_be_visible()
    assert listed(console, "gina") == {"data": "directory"}
    row(page, "data").locator("a.entry").click()
    expect(page).to_have_url(f"{console.base}/files/data")
    expect(page.locator("#crumbs [aria-current]")).to_have_text("data")
    expect(page.locator("#files-empty")).to_be_visible()
    (tmp_path / "sales.csv").write_text("region,amount\nnorth,10\n")
    page.set_input_files("#files-input", str(tmp_path / "sales.csv"))
    expect(row(page, "data/sales.csv")).to_be_visible()
    assert stored(console, "gina", "data/sales.csv") == b"region,amount\nnorth,10\n"
    page.locator("#crumbs a", has_text="Your drive").click()
    expect(page).to_have_url(f"{console.base}/files")
    expect(row(page, "data")).to_be_visible()
    expect(row(page, "data/sales.csv")).to_have_count(0)
    page.go_back()  # the browser's history holds the folder
    expect(page).to_have_url(f"{console.base}/files/data")
    expect(row(page, "data/sales.csv")).to_be_visible()
    page.reload()  # and so does the address alone
    expect(row(page, "data/sales.csv")).to_be_visible()
    (tmp_path / "batch" / "sub").mkdir(parents=True)  # a folder picked: its tree comes along
    (tmp_path / "batch" / "x.txt").write_bytes(b"x")
    (tmp_path / "batch" / "sub" / "y.txt").write_bytes(b"y")
    page.set_input_files("#files-folder-input", str(tmp_path / "batch"))
    expect(row(page, "data/batch")).to_be_visible()
    expect(page.locator("#uploads")).to_be_hidden()  # both sent
    assert stored(console, "gina", "data/batch/x.txt") == b"x"
    assert stored(console, "gina", "data/batch/sub/y.txt") == b"y"
    page.context.close()


def test_a_folders_address_survives_the_login(browser: Any, console: Console) -> None:
    console.user("nina")
    console.api("POST", f"/files/{urllib.parse.quote(ODD)}", name="nina")
    context = browser.new_context(base_url=console.base)
    page = context.new_page()
    page.goto("/files/a%20%23%3F%25b%20%C3%A9")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#username", "nina")
    page.fill("#password", USER_PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(f"{console.base}/files/a%20%23%3F%25b%20%C3%A9")
    expect(page.locator("#crumbs [aria-current]")).to_have_text(ODD)
    expect(page.locator("#files-empty")).to_be_visible()
    context.close()


def test_odd_names_travel_in_addresses_and_stay_text(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    page = user_page(browser, console, "hugo")
    answer(page, ODD)
    page.click("#files-mkdir")
    row(page, ODD).locator("a.entry").click()
    expect(page).to_have_url(f"{console.base}/files/a%20%23%3F%25b%20%C3%A9")
    markup = "<img src=x onerror=alert(1)> 50% #1?.txt"
    (tmp_path / markup).write_bytes(b"odd")
    page.set_input_files("#files-input", str(tmp_path / markup))
    odd_file = f"{ODD}/{markup}"
    expect(row(page, odd_file).locator("a.entry")).to_have_text(markup)
    assert page.locator("#files-rows img").count() == 0  # the name is text, not an element
    assert stored(console, "hugo", odd_file) == b"odd"
    page.goto(f"/files/{urllib.parse.quote(ODD)}")  # a link to the folder, typed
    with page.expect_download() as download:
        row(page, odd_file).locator("a.entry").click()
    assert Path(download.value.path()).read_bytes() == b"odd"
    answer(page, f"{ODD}/renamed #2.txt")
    row(page, odd_file).locator("button.rename").click()
    expect(row(page, f"{ODD}/renamed #2.txt")).to_be_visible()
    assert listed(console, "hugo", ODD) == {f"{ODD}/renamed #2.txt": "file"}
    answer(page, None)  # not confirmed: nothing deleted
    row(page, f"{ODD}/renamed #2.txt").locator("button.delete").click()
    expect(row(page, f"{ODD}/renamed #2.txt")).to_be_visible()
    assert stored(console, "hugo", f"{ODD}/renamed #2.txt") == b"odd"
    answer(page, "")
    row(page, f"{ODD}/renamed #2.txt").locator("button.delete").click()
    expect(page.locator("#files-empty")).to_be_visible()
    assert listed(console, "hugo", ODD) == {}
    page.locator("#crumbs a", has_text="Your drive").click()
    answer(page, "")
    row(page, ODD).locator("button.delete").click()
    expect(row(page, ODD)).to_have_count(0)
    assert listed(console, "hugo") == {}
    page.context.close()


def test_a_user_sees_only_their_own_drive(browser: Any, console: Console) -> None:
    console.user("ivan")
    console.api("POST", "/files/private", name="ivan")  # a folder
    status = urllib.request.Request(
        f"{console.base}/api/v1/files/private/secret.txt", b"ivan's", method="PUT",
        headers=console.token("ivan"),
    )  # fmt: skip
    urllib.request.urlopen(status, timeout=10).close()
    page = user_page(browser, console, "jane")
    expect(page.locator("#files-empty")).to_be_visible()
    expect(page.locator("#files-usage-text")).to_contain_text("0 B of 4.0 MiB used")
    page.goto("/files/private")
    expect(page.locator("#files-problems")).to_have_text("no 'private' in your drive")
    expect(page.locator("#files-rows tr")).to_have_count(0)
    page.context.close()


def test_a_refused_upload_says_the_apis_words_and_the_usage_follows(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    page = user_page(browser, console, "kate")
    usage = page.locator("#files-usage-text")
    expect(usage).to_have_text("0 B of 4.0 MiB used · 0 of 10,000 files and folders")
    (tmp_path / "one.bin").write_bytes(b"1" * MIB)
    page.set_input_files("#files-input", str(tmp_path / "one.bin"))
    expect(usage).to_have_text("1.0 MiB of 4.0 MiB used · 1 of 10,000 files and folders")
    (tmp_path / "over quota.bin").write_bytes(b"2" * (5 * MIB))
    (tmp_path / "over limit.bin").write_bytes(b"3" * (7 * MIB))
    page.set_input_files("#files-input", [str(tmp_path / n) for n in ("over quota.bin", "over limit.bin")])  # fmt: skip
    expect(page.locator("#files-problems div")).to_have_text(
        [
            f"over quota.bin: not uploaded: your drive quota is {QUOTA} bytes; {3 * MIB} are free"
            " (3.0 MiB free; the file is 5.0 MiB)",
            f"over limit.bin: not uploaded: the request body is {7 * MIB} bytes; this route"
            f" takes at most {MAX_UPLOAD} (at most 6.0 MiB; the file is 7.0 MiB)",
        ]
    )
    assert listed(console, "kate") == {"one.bin": "file"}
    expect(usage).to_have_text("1.0 MiB of 4.0 MiB used · 1 of 10,000 files and folders")
    answer(page, "")
    row(page, "one.bin").locator("button.delete").click()
    expect(usage).to_have_text("0 B of 4.0 MiB used · 0 of 10,000 files and folders")
    page.context.close()


def test_an_upload_while_the_users_body_slots_are_held_says_so(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    """Two uploads of the user's own (another program's) still arriving hold both their body
    slots: the page's upload is refused unread, 429, and says why in the API's words."""
    page = user_page(browser, console, "mona")
    token = console.token("mona")["Authorization"]
    head = (
        f"PUT /api/v1/files/slow{{}}.bin HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
        f"Content-Length: {MIB}\r\n\r\n"
    )
    slow = [Client(console.base, head.format(n).encode() + b"x" * 65536) for n in range(SLOTS)]
    (tmp_path / "later.bin").write_bytes(b"l" * 100_000)  # a body a thread reads: over 32 KiB
    with trickling(slow):
        wait_for(lambda: held(console.served, "mona") == SLOTS)
        page.set_input_files("#files-input", str(tmp_path / "later.bin"))
        expect(page.locator("#files-problems")).to_have_text(
            f"later.bin: not uploaded: you already have {SLOTS} request bodies being received"
            " (uploads, large saves or submits); retry when one ends"
        )
    for client in slow:
        client.sock.close()
    wait_for(lambda: held(console.served, "mona") == 0)  # their requests ended with them
    assert listed(console, "mona") == {}
    page.set_input_files("#files-input", str(tmp_path / "later.bin"))  # the slots are free again
    expect(row(page, "later.bin")).to_be_visible()
    assert stored(console, "mona", "later.bin") == b"l" * 100_000
    page.context.close()


def test_a_run_that_found_no_file_links_the_files_page(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    """The walkthrough's dead end: a run fails reading a file its user's drive lacks. Its page
    links the Files page, where the file is put; the next run reads it."""
    package = json.loads((Path(__file__).parent / "data" / "ticker.dwp").read_text())
    package["apps"]["ticker"].update(
        code=READS_DRIVE, inputs=[], outputs=[{"type": "output", "name": "text"}]
    )
    package["flow"]["ticker"]["data"] = {}
    page = user_page(browser, console, "lena")

    def run() -> dict[str, Any]:
        made = console.api("POST", "/runs", {"package": package}, "lena")
        finished = lambda: console.api("GET", f"/runs/{made['run_id']}", name="lena")  # noqa: E731
        return dict(wait_for(lambda: (r := finished())["status"] in {"ready", "error"} and r, 60))

    failed = run()
    assert failed["status"] == "error", failed
    page.goto(f"/runs/{failed['run_id']}")
    expect(page.locator("#flow-reason")).to_contain_text("FileNotFoundError")
    page.locator("#flow-drive-hint a").click()
    expect(page).to_have_url(f"{console.base}/files")
    answer(page, "data")
    page.click("#files-mkdir")
    row(page, "data").locator("a.entry").click()
    (tmp_path / "in.txt").write_text("from the drive")
    page.set_input_files("#files-input", str(tmp_path / "in.txt"))
    expect(row(page, "data/in.txt")).to_be_visible()
    again = run()
    assert again["status"] == "ready", again
    assert again["flows"]["ticker"]["outputs"] == {"text": "from the drive"}
    page.goto(f"/runs/{again['run_id']}#flow=ticker")
    expect(page.locator("#flow-status")).to_have_text(re.compile("ready|done"))
    expect(page.locator("#flow-drive-hint")).to_be_hidden()
    page.context.close()


def test_the_files_table_fits_a_phone(browser: Any, console: Console) -> None:
    """At 390 px the table was 780 px wide, scrolled sideways in its box: its Modified column
    alone took 210 px for "12/5/2026, 10:34:12 AM". It fits now: a short date (the whole one in
    its tooltip), Rename and Delete one above the other, the file's name its download."""
    console.user("phoebe")
    path = "a-file-with-a-rather-long-name-of-quarterly-figures.csv"
    console.api("PUT", f"/files/{path}", "a,b\n" * 4000, "phoebe")
    console.api("PUT", "/files/data/x.txt", "x", "phoebe")
    options = {"viewport": {"width": 390, "height": 844}, "locale": "en-US"}
    page = log_in(browser, console.base, "phoebe", **options)
    try:
        page.goto("/files")
        expect(page.locator("#files-rows tr")).to_have_count(2)
        box = page.locator("div.scroll-x:has(#files-table)")
        assert box.evaluate("(el) => el.scrollWidth <= el.clientWidth")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
        file_row = row(page, path)
        for name in ("Rename", "Delete"):
            expect(file_row.get_by_role("button", name=name)).to_be_in_viewport()
        expect(file_row.locator("a.download")).to_be_hidden()
        expect(file_row.locator("a.entry")).to_have_attribute("download", "")
        modified = file_row.locator("td.modified time")
        full = str(modified.get_attribute("title"))
        today = re.compile(r"^\d{1,2}:\d{2}( [AP]M)?$")  # today's: its time
        expect(modified).to_have_text(today, use_inner_text=True)
        assert re.search(r"\d{4}", full), full  # the whole date, year and all, in its tooltip
        page.set_viewport_size({"width": 1440, "height": 900})  # a desktop: all of it, as before
        expect(modified).to_have_text(full, use_inner_text=True)
        expect(file_row.locator("a.download")).to_be_visible()
    finally:
        page.context.close()
