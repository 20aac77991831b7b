"""Small real servers on 127.0.0.1 for the service's tests: an HTTP sink that speaks enough of the Telegram Bot API
(``getUpdates`` from a queue the test fills, ``sendMessage`` recorded) and accepts Slack webhook posts, and an
SMTP sink (plain SMTP: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that keeps the messages it receives.

Nothing in the product imports this module.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HttpSink", "SmtpSink"]


class HttpSink:
    """An HTTP server recording every request (``requests``: dicts of method, path, json) and answering:

    - ``POST .../getUpdates``: the queued updates with ``update_id >= offset`` (long polling: waits up to the
      request's ``timeout`` seconds, at most 1 s, for one to arrive);
    - ``POST .../sendMessage``: ``{"ok": true, "result": {...}}``;
    - anything else: ``status`` (default 200) with body ``ok`` (a Slack webhook's answer).
    """

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._lock = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
                return

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace")}
                with sink._lock:
                    sink.requests.append({"method": "POST", "path": self.path, "json": body})
                    sink._lock.notify_all()
                if self.path.endswith("/getUpdates"):
                    self._reply(200, {"ok": True, "result": sink._updates(body)})
                elif self.path.endswith("/sendMessage"):
                    self._reply(200, {"ok": True, "result": {"message_id": len(sink.requests),
                                                             "chat": {"id": body.get("chat_id")},
                                                             "text": body.get("text")}})
                else:
                    self._reply(sink.status, "ok" if sink.status < 300 else "error")

            def _reply(self, status: int, payload: Any) -> None:
                data = (json.dumps(payload) if not isinstance(payload, str) else payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(payload, str) else "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-sink", daemon=True)

    def __enter__(self) -> HttpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def push_message(self, chat_id: int, text: str) -> int:
        """Queue a Telegram update (a text message from ``chat_id``); returns its update id."""
        with self._lock:
            uid = self._next_update
            self._next_update += 1
            self.updates.append({"update_id": uid, "message": {"message_id": uid, "date": int(time.time()),
                                                               "chat": {"id": chat_id, "type": "private"},
                                                               "text": text}})
            self._lock.notify_all()
        return uid

    def _updates(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(body.get("offset") or 0)
        deadline = time.monotonic() + min(float(body.get("timeout") or 0), 1.0)
        with self._lock:
            while True:
                out = [u for u in self.updates if u["update_id"] >= offset]
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._lock.wait(left)

    def sent(self, suffix: str = "/sendMessage") -> list[dict[str, Any]]:
        """The JSON bodies posted to paths ending in ``suffix``."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"].endswith(suffix)]

    def wait_for(self, suffix: str, n: int, timeout_s: float = 10.0) -> list[dict[str, Any]]:
        """Wait until ``n`` bodies were posted to ``suffix`` (returns what arrived by the timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while True:
                got = [r["json"] for r in self.requests if r["path"].endswith(suffix)]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0:
                    return got
                self._lock.wait(left)


class SmtpSink:
    """A plain SMTP server on 127.0.0.1 keeping each message (``messages``: parsed ``email.message.Message``)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.envelopes: list[dict[str, Any]] = []
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self._say("220 localhost graphwiz test SMTP")
                mail_from, rcpt = "", []
                while True:
                    line = self.rfile.readline()
                    if not line:
                        return
                    cmd = line.decode(errors="replace").strip()
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self._say("250 localhost")
                    elif verb == "MAIL":
                        mail_from = cmd.split(":", 1)[1].strip()
                        self._say("250 OK")
                    elif verb == "RCPT":
                        rcpt.append(cmd.split(":", 1)[1].strip())
                        self._say("250 OK")
                    elif verb == "DATA":
                        self._say("354 end with <CRLF>.<CRLF>")
                        chunks = []
                        while True:
                            d = self.rfile.readline()
                            if d in (b".\r\n", b".\n", b""):
                                break
                            chunks.append(d[1:] if d.startswith(b"..") else d)
                        sink.messages.append(message_from_bytes(b"".join(chunks)))
                        sink.envelopes.append({"from": mail_from, "to": list(rcpt)})
                        self._say("250 OK queued")
                    elif verb in ("RSET", "NOOP"):
                        self._say("250 OK")
                    elif verb == "QUIT":
                        self._say("221 bye")
                        return
                    else:
                        self._say("502 command not implemented")

            def _say(self, text: str) -> None:
                self.wfile.write((text + "\r\n").encode())

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.host, self.port = "127.0.0.1", int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="smtp-sink", daemon=True)

    def __enter__(self) -> SmtpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
