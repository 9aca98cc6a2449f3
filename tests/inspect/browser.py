#!/usr/bin/python3
"""The inspector page in a real browser (issue 13).

    /usr/bin/python3 browser.py WARREN_BIN SCREENSHOT.png

Starts an origin (plain HTTP plus a WebSocket echo, in this process), then
`warren http ORIGIN --inspect ...` with its embedded node, and drives the
page in headless Chromium through Selenium:

  - the stdout contract: "Forwarding ..." first, then "Inspect http://...";
  - requests made through the tunnel appear in the list without a reload;
  - opening one shows its request headers and body, and the response;
  - Replay makes the origin receive the request again, and the replay
    shows up as a new row; Edit and replay sends the edited request;
    Copy as curl shows the command;
  - a WebSocket session through the tunnel shows up with its messages;
  - the filter hides what does not match;
  - markup in captured headers and bodies is shown as text, never run;
  - the page's guard: a foreign Host is refused (DNS rebinding);
  - no console errors (script errors, failed loads, CSP violations);
  - `--inspect off` prints no Inspect line;
  - warren stops cleanly on SIGTERM with no sanitizer report (ASan build).

A screenshot of the page goes to SCREENSHOT.png.  Exit 77 (skip) only when
Chromium, its driver or the Selenium module is not installed.
"""
import base64
import hashlib
import http.client
import json
import os
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    print("SKIP: python3-selenium is not installed (tools/bootstrap): %s" % e)
    sys.exit(77)

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"
for p in (CHROMIUM, DRIVER):
    if not os.path.exists(p):
        print("SKIP: %s is missing (tools/bootstrap installs chromium and "
              "chromium-driver)" % p)
        sys.exit(77)

WARREN = sys.argv[1]
SHOT = sys.argv[2] if len(sys.argv) > 2 else "inspector.png"
NAME = "browsertest"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# ---- the origin -------------------------------------------------------------

received = []  # (method, path, body) in arrival order
received_lock = threading.Lock()
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def read_head(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            return lines
        lines.append(line.decode("latin-1").rstrip("\r\n"))


def ws_read_frame(f):
    h = f.read(2)
    if len(h) < 2:
        return None, None
    op, n = h[0] & 0x0F, h[1] & 0x7F
    if n == 126:
        n = struct.unpack(">H", f.read(2))[0]
    elif n == 127:
        n = struct.unpack(">Q", f.read(8))[0]
    mask = f.read(4) if h[1] & 0x80 else b"\0\0\0\0"
    data = bytes(b ^ mask[i % 4] for i, b in enumerate(f.read(n)))
    return op, data


def ws_frame(op, data, mask=None):
    head = bytes([0x80 | op])
    m = 0x80 if mask else 0
    if len(data) < 126:
        head += bytes([m | len(data)])
    else:
        head += bytes([m | 126]) + struct.pack(">H", len(data))
    if mask:
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        head += mask
    return head + data


class Origin(socketserver.StreamRequestHandler):
    def handle(self):
        while True:
            head = read_head(self.rfile)
            if not head:
                return
            method, path, _ = head[0].split(" ", 2)
            hdrs = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            body = self.rfile.read(int(hdrs.get("content-length", "0")))
            with received_lock:
                received.append((method, path, body))
            if hdrs.get("upgrade", "").lower() == "websocket":
                acc = base64.b64encode(hashlib.sha1(
                    hdrs["sec-websocket-key"].encode() + WS_GUID).digest())
                self.wfile.write(b"HTTP/1.1 101 Switching Protocols\r\n"
                                 b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                 b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
                while True:
                    op, data = ws_read_frame(self.rfile)
                    if op is None or op == 8:
                        self.wfile.write(ws_frame(8, b""))
                        return
                    self.wfile.write(ws_frame(op, b"echo: " + data))
            status = b"200 OK"
            if path.startswith("/hello") or path.startswith("/api/"):
                out = json.dumps({"hello": "browser", "path": path}).encode()
                ctype = b"application/json"
            elif path.startswith("/missing"):
                status, out, ctype = b"404 Not Found", b"no such page", \
                    b"text/plain"
            else:
                out = b"got " + str(len(body)).encode() + b" bytes"
                ctype = b"text/plain"
            self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " +
                             ctype +
                             b"\r\nContent-Length: " + str(len(out)).encode() +
                             b"\r\n\r\n" + out)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


# ---- helpers ----------------------------------------------------------------

procs = []


def start_warren(args):
    # stderr to a file: a pipe nobody reads could fill and block warren.
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([WARREN, "http"] + args, stdout=subprocess.PIPE,
                         stderr=err)
    p.errfile = err
    procs.append(p)
    return p


def read_line(p, timeout=10):
    """One stdout line, or None after |timeout| s."""
    out = []

    def rd():
        out.append(p.stdout.readline().decode())
    t = threading.Thread(target=rd, daemon=True)
    t.start()
    t.join(timeout)
    return out[0].rstrip("\n") if out else None


def tunnel(node_port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", node_port, timeout=10)
    h = {"Host": "%s.localhost:%d" % (NAME, node_port)}
    h.update(headers or {})
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def fail(msg):
    print("FAIL:", msg)
    sys.exit(1)


def wait_for(what, fn, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    fail("timed out waiting for " + what)


def click(drv, css):
    """Clicks |css| once the page has rendered it (details load async)."""
    WebDriverWait(drv, 10).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, css))
    for _ in range(5):
        try:
            drv.find_element(By.CSS_SELECTOR, css).click()
            return
        except StaleElementReferenceException:
            time.sleep(0.05)
    fail("%s kept going stale" % css)


def main():
    origin = Server(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    oport = origin.server_address[1]
    node_port, insp_port = free_port(), free_port()

    p = start_warren([str(oport), "--name", NAME, "--listen",
                      "127.0.0.1:%d" % node_port, "--inspect",
                      "127.0.0.1:%d" % insp_port])
    first, second = read_line(p), read_line(p)
    want1 = "Forwarding http://%s.localhost:%d -> http://localhost:%d" % (
        NAME, node_port, oport)
    if first != want1:
        fail("first stdout line %r, want %r" % (first, want1))
    insp = "http://127.0.0.1:%d" % insp_port
    if second != "Inspect " + insp:
        fail("second stdout line %r, want %r" % (second, "Inspect " + insp))

    # DNS-rebinding defence, seen from outside.
    c = http.client.HTTPConnection("127.0.0.1", insp_port, timeout=5)
    c.request("GET", "/api/status", headers={"Host": "rebind.example:%d" %
                                             insp_port})
    r = c.getresponse()
    if r.status != 403:
        fail("foreign Host answered %d, want 403" % r.status)
    r.read()
    c.close()

    opts = webdriver.ChromeOptions()
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--disable-gpu", "--window-size=1400,860",
              "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    try:
        drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    except Exception as e:  # the browser cannot start here: a real failure
        fail("cannot start headless Chromium: %s" % e)
    try:
        drv.set_page_load_timeout(20)
        drv.get(insp + "/")
        # The detail view re-renders too: a lookup that went stale is tried
        # again rather than failing the wait.
        wait = WebDriverWait(drv, 10,
                             ignored_exceptions=[StaleElementReferenceException])
        wait.until(lambda d: "live" in d.find_element(By.ID, "live").text)

        # Rows are looked up and used inside the page, in one script each:
        # live updates re-render rows at any moment, so an element handle
        # kept across two WebDriver calls can go stale.
        # arguments[1]: the path must be exactly arguments[0] (its text
        # before any tag), else contain it.
        find = ("for (const tr of document.querySelectorAll('#rows tr.ex')) {"
                " const td = tr.querySelector('td.target');"
                " const p = td && td.firstChild ? td.firstChild.textContent"
                "  .trim() : '';"
                " if (td && (arguments[1] ? p === arguments[0] :"
                "  td.textContent.includes(arguments[0]))) {%s} }"
                " return null;")

        def row(target_part):
            """The row's visible text ("" when the filter hides it), or
            None when there is no such row."""
            return drv.execute_script(
                find % "return tr.style.display === 'none' ? '' :"
                       " tr.innerText;", target_part, False)

        def shown(target_part):
            return drv.execute_script(
                find % "return tr.style.display !== 'none';", target_part,
                False)

        def click_row(target_part, exact=False):
            if not drv.execute_script(find % "tr.click(); return true;",
                                      target_part, exact):
                fail("no row for %r" % target_part)

        # 1. Requests appear live, without a reload.
        url_before = drv.current_url
        nav_before = drv.execute_script(
            "return performance.getEntriesByType('navigation')[0].startTime"
            " + '/' + performance.timeOrigin")
        st, body = tunnel(node_port, "GET", "/hello?from=browser",
                          headers={"X-Test-Header": "seen-in-browser"})
        if st != 200 or b"browser" not in body:
            fail("GET through the tunnel: %d %r" % (st, body))
        wait.until(lambda d: row("/hello?from=browser") is not None)
        st, body = tunnel(node_port, "POST", "/hook",
                          body=json.dumps({"event": "push", "n": 42}),
                          headers={"Content-Type": "application/json"})
        if st != 200:
            fail("POST through the tunnel: %d" % st)
        wait.until(lambda d: row("/hook") is not None)
        nav_after = drv.execute_script(
            "return performance.getEntriesByType('navigation')[0].startTime"
            " + '/' + performance.timeOrigin")
        if drv.current_url != url_before or nav_after != nav_before:
            fail("the page reloaded")

        # 2. Opening one shows its headers and body.
        click_row("/hello?from=browser")
        wait.until(lambda d: "seen-in-browser" in
                   d.find_element(By.ID, "detail").text)
        detail = drv.find_element(By.ID, "detail").text
        for want in ("X-Test-Header", "GET /hello?from=browser"):
            if want not in detail:
                fail("detail lacks %r:\n%s" % (want, detail))
        click(drv, "[data-tab=response]")
        wait.until(lambda d: '"hello": "browser"' in
                   d.find_element(By.ID, "resp-body").text)

        click_row("/hook")
        wait.until(lambda d: '"event": "push"' in
                   d.find_element(By.ID, "req-body").text)

        # 3. Replay: the origin receives the request again.
        with received_lock:
            hooks_before = sum(1 for m, pth, _ in received if pth == "/hook")
        click(drv, "#replay")

        def replayed():
            with received_lock:
                got = [b for m, pth, b in received if pth == "/hook"]
            return len(got) > hooks_before and got[-1]
        body = wait_for("the origin to receive the replay", replayed)
        if json.loads(body) != {"event": "push", "n": 42}:
            fail("replayed body %r" % body)
        wait.until(lambda d: "replay of" in d.execute_script(
            "return document.getElementById('rows').innerText"))

        # Edit and replay: the origin receives the edited request.
        click(drv, "#edit-replay")
        wait.until(lambda d: d.find_elements(By.ID, "ed-body"))
        path = drv.find_element(By.ID, "ed-target")
        path.clear()
        path.send_keys("/hook?edited=1")
        body = drv.find_element(By.ID, "ed-body")
        body.clear()
        body.send_keys('{"event": "edited"}')
        click(drv, "#ed-send")

        def edited():
            with received_lock:
                got = [(pth, b) for m, pth, b in received
                       if pth == "/hook?edited=1"]
            return got and got[-1]
        _, body = wait_for("the origin to receive the edited replay", edited)
        if json.loads(body) != {"event": "edited"}:
            fail("edited replay body %r" % body)
        wait.until(lambda d: row("/hook?edited=1") is not None)
        click_row("/hook")

        # Copy as curl shows the command.
        click(drv, "#copy-curl")
        wait.until(lambda d: d.find_elements(By.ID, "curl"))
        curl = drv.find_element(By.ID, "curl").text
        if not curl.startswith("curl -X POST") or "/hook" not in curl:
            fail("curl command %r" % curl)

        # 4. A WebSocket session through the tunnel.
        s = socket.create_connection(("127.0.0.1", node_port), timeout=10)
        key = base64.b64encode(os.urandom(16))
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: %s.localhost:%d\r\n"
                  b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " %
                  (NAME.encode(), node_port) + key + b"\r\n\r\n")
        f = s.makefile("rb")
        head = read_head(f)
        if not head or " 101 " not in head[0]:
            fail("WebSocket upgrade answered %r" % head)
        for msg in (b"ping-from-test", b"second message"):
            s.sendall(ws_frame(1, msg, mask=os.urandom(4)))
            op, data = ws_read_frame(f)
            if data != b"echo: " + msg:
                fail("WebSocket echo %r" % data)
        wait.until(lambda d: "WS" in (row("/ws") or ""))
        wait.until(lambda d: "4 msg" in (row("/ws") or ""))
        click_row("/ws")
        click(drv, "[data-tab=websocket]")
        wait.until(lambda d: "echo: ping-from-test" in
                   d.find_element(By.ID, "wsmsgs").text)

        # A few more, for a screenshot that shows what a list looks like.
        tunnel(node_port, "GET", "/api/users?page=2",
               headers={"Accept": "application/json"})
        st, _ = tunnel(node_port, "GET", "/missing/favicon.png")
        if st != 404:
            fail("GET /missing: %d" % st)
        wait.until(lambda d: "404" in (row("/missing/favicon.png") or ""))
        drv.find_element(By.ID, "filter").send_keys("404")
        wait.until(lambda d: shown("/hook") is False)
        if not shown("/missing/favicon.png"):
            fail("the filter hides the 404")
        drv.find_element(By.ID, "filter").clear()
        drv.execute_script("applyFilter()")
        wait.until(lambda d: shown("/hook"))

        # Captured bytes are shown, never run (a visitor controls them).
        evil = '<img src=x onerror="window.pwned=1">'
        tunnel(node_port, "POST", "/xss", body="<script>window.pwned=2"
               "</script>", headers={"X-Evil": evil,
                                     "Content-Type": "text/html"})
        wait.until(lambda d: row("/xss") is not None)
        click_row("/xss")
        wait.until(lambda d: evil in d.find_element(By.ID, "detail").text)
        if drv.execute_script("return window.pwned") is not None:
            fail("captured markup ran in the page")
        if "<script>window.pwned=2</script>" not in \
                drv.find_element(By.ID, "req-body").text:
            fail("the HTML body is not shown as text")

        # The screenshot: the list with the JSON POST opened.
        click_row("/hook", exact=True)
        wait.until(lambda d: '"event": "push"' in
                   d.find_element(By.ID, "req-body").text)
        time.sleep(0.3)  # let the row highlight settle
        drv.save_screenshot(SHOT)
        s.sendall(ws_frame(8, b"", mask=os.urandom(4)))
        s.close()
        print("screenshot:", SHOT)
        # The page ran without a script error or a failed load.
        errors = [m for m in drv.get_log("browser")
                  if m.get("level") == "SEVERE"]
        if errors:
            fail("browser console errors: %r" % errors)
    finally:
        drv.quit()

    # 5. --inspect off: no second line, nothing listening.
    node2, insp2 = free_port(), free_port()
    p2 = start_warren([str(oport), "--name", "off", "--listen",
                       "127.0.0.1:%d" % node2, "--inspect", "off"])
    first = read_line(p2)
    if not first or not first.startswith("Forwarding "):
        fail("--inspect off: first line %r" % first)
    extra = read_line(p2, timeout=1)
    if extra is not None and extra != "":
        fail("--inspect off printed %r" % extra)
    print("ok")


def stop_all():
    """Stops every warren (SIGTERM: a clean shutdown, so an ASan build's
    leak check runs) and fails on any sanitizer report in their stderr."""
    bad = []
    for p in procs:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            bad.append("a warren did not stop within 10 s of SIGTERM")
        p.errfile.seek(0)
        err = p.errfile.read().decode(errors="replace")
        if "Sanitizer" in err or "runtime error" in err:
            bad.append(err[-4000:])
    return bad


if __name__ == "__main__":
    try:
        main()
    finally:
        problems = stop_all()
    if problems:
        for b in problems:
            print("FAIL:", b)
        sys.exit(1)
