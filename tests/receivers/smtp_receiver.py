#!/usr/bin/python3
"""A real SMTP server for integration tests (Debian's aiosmtpd; run it with
/usr/bin/python3, which has python3-aiosmtpd).

    smtp_receiver.py --dir DIR [--tls-cert CERT --tls-key KEY]
                     [--require-starttls | --implicit-tls] [--auth USER:PASSWORD]

Listens on 127.0.0.1, on a port the system picks, and prints one JSON line
{"port": N} on stdout once it accepts connections. Each message it accepts
becomes DIR/NNNN.eml (the DATA exactly as received, dot-stuffing undone) and
DIR/NNNN.json (the envelope: mail_from, rcpt_tos, and how the session went:
tls, authenticated_as); the .json is written last, by rename, so a test that
sees it can read both.

With a certificate, STARTTLS is offered (with --require-starttls, every
command but EHLO, NOOP, QUIT and STARTTLS is refused before it) and AUTH only
after it; --implicit-tls speaks TLS from the first byte instead (smtps://).
--auth USER:PASSWORD requires AUTH (PLAIN or LOGIN) before MAIL and accepts
only that pair. SIGTERM or SIGINT stops it.
"""

import argparse
import asyncio
import hmac
import json
import logging
import os
import signal
import ssl
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Saver:
    """The aiosmtpd handler: every message to DIR, numbered in order."""

    def __init__(self, directory, implicit_tls):
        self.directory = directory
        self.implicit_tls = implicit_tls
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        base = os.path.join(self.directory, "%04d" % self.count)
        with open(base + ".eml", "wb") as f:
            f.write(envelope.original_content)
        login = session.auth_data.login if isinstance(session.auth_data, LoginPassword) else None
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "mail_options": envelope.mail_options,
            "tls": self.implicit_tls or session.ssl is not None,
            "authenticated_as": login.decode("utf-8", "replace") if login is not None else None,
        }
        with open(base + ".json.tmp", "w") as f:
            json.dump(meta, f)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 OK message %04d saved" % self.count


def authenticator_for(user, password):
    def authenticate(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and hmac.compare_digest(auth_data.login, user)
              and hmac.compare_digest(auth_data.password, password))
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
    return authenticate


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", required=True, help="where messages are saved")
    p.add_argument("--tls-cert", help="PEM certificate (chain) of the server")
    p.add_argument("--tls-key", help="PEM private key of the server")
    p.add_argument("--require-starttls", action="store_true",
                   help="refuse mail until the client has issued STARTTLS")
    p.add_argument("--implicit-tls", action="store_true",
                   help="TLS from the first byte (smtps://) instead of STARTTLS")
    p.add_argument("--auth", metavar="USER:PASSWORD", help="require AUTH with this pair")
    args = p.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.require_starttls or args.implicit_tls) and not args.tls_cert:
        p.error("--require-starttls and --implicit-tls need --tls-cert and --tls-key")
    if args.require_starttls and args.implicit_tls:
        p.error("--require-starttls and --implicit-tls exclude each other")
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth takes USER:PASSWORD")
    return args


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
    options = {"hostname": "smtp-receiver.test", "decode_data": False}
    if tls and not args.implicit_tls:
        options.update(tls_context=tls, require_starttls=args.require_starttls)
    if args.auth is not None:
        user, password = args.auth.split(":", 1)
        options.update(
            authenticator=authenticator_for(user.encode(), password.encode()),
            auth_required=True,
            # STARTTLS offered: no AUTH in clear. Implicit TLS is TLS already
            # (aiosmtpd only knows of STARTTLS); no TLS at all is for tests
            # of plain text.
            auth_require_tls=bool(tls) and not args.implicit_tls)
    handler = Saver(args.dir, args.implicit_tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **options), host="127.0.0.1", port=0,
        ssl=tls if args.implicit_tls else None)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write(json.dumps({"port": port}) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main():
    args = parse_args()
    # aiosmtpd warns of its own use of Session.login_data, and of AUTH without
    # STARTTLS even on an implicit TLS connection: noise in a test's stderr.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
