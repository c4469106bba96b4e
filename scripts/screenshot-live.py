#!/usr/bin/env python3
"""A PNG of a live page (`hypersweep serve`) after its script has run for a while, with an optional
click first: headless Chromium driven over its DevTools protocol on a pipe, since `--screenshot`
captures a page at its load event, before the event stream has delivered anything.

    scripts/screenshot-live.py URL OUT.png [SECONDS] [CSS-SELECTOR-TO-CLICK]
"""
import base64, json, os, subprocess, sys, tempfile, time

url, out = sys.argv[1], sys.argv[2]
wait = float(sys.argv[3]) if len(sys.argv) > 3 else 3.0
click = sys.argv[4] if len(sys.argv) > 4 else None
exe = "/usr/lib/chromium/chromium" if os.path.exists("/usr/lib/chromium/chromium") else "chromium"
profile = tempfile.TemporaryDirectory()
to_r, to_w = os.pipe()
from_r, from_w = os.pipe()
browser = subprocess.Popen(
    ["sh", "-c", 'exec 3<&"$1" 4>&"$2"; shift 2; exec "$@"', "sh", str(to_r), str(from_w),
     exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--log-level=3",
     "--hide-scrollbars", "--remote-debugging-pipe", f"--user-data-dir={profile.name}",
     "--window-size=1280,900", "about:blank"],
    pass_fds=(to_r, from_w), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
os.close(to_r); os.close(from_w)
send, recv_file = os.fdopen(to_w, "wb"), os.fdopen(from_r, "rb")
pending, next_id = b"", 0


def call(method, params=None, session=None):
    global pending, next_id
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if session:
        msg["sessionId"] = session
    send.write(json.dumps(msg).encode() + b"\0"); send.flush()
    while True:
        while b"\0" not in pending:
            chunk = recv_file.read1(65536)
            if not chunk:
                raise EOFError("chromium closed its pipe")
            pending += chunk
        text, pending = pending.split(b"\0", 1)
        reply = json.loads(text)
        if reply.get("id") == next_id:
            if "error" in reply:
                raise RuntimeError(reply["error"])
            return reply["result"]


target = call("Target.createTarget", {"url": url})["targetId"]
session = call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
call("Emulation.setDeviceMetricsOverride",
     {"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session)
time.sleep(wait)
if click:
    call("Runtime.evaluate", {"expression": f"document.querySelector({json.dumps(click)}).click()"}, session)
    time.sleep(1.5)
png = call("Page.captureScreenshot", {"format": "png"}, session)["data"]
with open(out, "wb") as f:
    f.write(base64.b64decode(png))
try:
    call("Browser.close")
except EOFError:
    pass
browser.wait(timeout=10)
print(out)
