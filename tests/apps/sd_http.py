#!/usr/bin/env python3
"""A plain socket-activated HTTP server that knows nothing of zdr: only the systemd conventions
(LISTEN_PID/LISTEN_FDS/LISTEN_FDNAMES from fd 3, READY=1 to NOTIFY_SOCKET) and a graceful stop
on SIGTERM (finish in-flight requests, then exit).

Usage: sd_http.py VERSION [REPORT.json]   (the report records what the process received)
"""
import fcntl
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = sys.argv[1] if len(sys.argv) > 1 else "py"


def open_fds():
    fds = []
    for fd in range(0, 256):
        try:
            fcntl.fcntl(fd, fcntl.F_GETFD)
            fds.append(fd)
        except OSError:
            pass
    return fds


def report(path):
    fd_flags = fcntl.fcntl(3, fcntl.F_GETFD) if 3 in open_fds() else None
    data = {
        "pid": os.getpid(),
        "open_fds": open_fds(),
        "listen_pid": os.environ.get("LISTEN_PID"),
        "listen_fds": os.environ.get("LISTEN_FDS"),
        "listen_fdnames": os.environ.get("LISTEN_FDNAMES"),
        "notify_socket": os.environ.get("NOTIFY_SOCKET"),
        "fd3_flags": fd_flags,
    }
    with open(path + ".tmp", "w") as f:
        json.dump(data, f)
    os.rename(path + ".tmp", path)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection: nothing idle to cut at drain

    def do_GET(self):
        body = ("hello from %s\n" % VERSION).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Version", VERSION)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) > 2:
        report(sys.argv[2])
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        sys.exit("not socket-activated")
    sock = socket.socket(fileno=3)
    # Several processes accept from this one socket: a blocking accept() could hang after
    # another process took the connection, so poll + non-blocking accept (socketserver copes).
    sock.setblocking(False)
    server = ThreadingHTTPServer(("", 0), Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.daemon_threads = False  # server_close() waits for in-flight requests

    def stop(*_):
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    notify = os.environ.get("NOTIFY_SOCKET")
    if notify:
        n = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        n.sendto(b"READY=1", "\0" + notify[1:] if notify.startswith("@") else notify)
        n.close()
    server.serve_forever(poll_interval=0.05)
    server.server_close()


if __name__ == "__main__":
    main()
