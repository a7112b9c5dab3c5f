"""A real SMTP server for the alert tests (crates/strata/tests/it/alerts.rs): aiosmtpd from
PyPI, listening on 127.0.0.1 at an ephemeral port that it prints as its first line of output.

Usage: python smtp_sink.py DIR [CERT KEY]

With CERT and KEY (PEM) it offers STARTTLS and refuses mail until the client has started TLS.
Every message it accepts becomes one JSON file in DIR (written aside, then renamed, so a reader
never sees half a file): the envelope (`mail_from`, `rcpt_tos`), the decoded `subject`, every
header as `[name, value]` pairs, the decoded text `body`, the `raw` message and `tls` (whether
the session was encrypted when the message came).
"""

import asyncio
import itertools
import json
import os
import ssl
import sys
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP


class Sink:
    def __init__(self, out):
        self.out = out
        self.numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        message = message_from_bytes(raw, policy=policy.default)
        part = message.get_body(preferencelist=("plain", "html"))
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "subject": str(message.get("subject", "")),
            "headers": [[name, str(value)] for name, value in message.items()],
            "body": part.get_content() if part is not None else "",
            "raw": raw.decode("utf-8", "replace"),
            "tls": session.ssl is not None,
        }
        number = next(self.numbers)
        aside = os.path.join(self.out, f".{number:06}.tmp")
        with open(aside, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.rename(aside, os.path.join(self.out, f"{number:06}.json"))
        return "250 Message accepted for delivery"


async def main(out, cert=None, key=None):
    sink = Sink(out)
    tls = None
    if cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            sink, hostname="sink.test", tls_context=tls, require_starttls=tls is not None
        ),
        "127.0.0.1",
        0,
    )
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
