"""Workload: parses many email messages with the standard library's email package and reads them.

    python email_messages.py [MESSAGES]

Each message (made from templates here, not with email itself) has address
lists with display names, a date, an encoded-word subject, a message id and
a multipart body: a quoted-printable text part, an HTML part and a base64
attachment. Each is parsed with email.policy.default (the header registry and
its header parser) and read as a mail client would: the addresses, the date,
the subject, each part's content and the attachment's file name. The
benchmark hooks every function of email and its submodules.
"""

import base64
import email
import email.policy
import sys

messages = int(sys.argv[1]) if len(sys.argv) > 1 else 40

TEMPLATE = """\
From: "Ada Lovelace {n}" <ada{n}@example.org>
To: Charles Babbage <charles@example.com>, "Team, Engine" <engine-{n}@lists.example.net>
Cc: mary{n}@example.org
Subject: =?utf-8?q?Re=3A_Notes_on_the_Analytical_Engine_=E2=80=94_part_{n}?=
Date: Mon, {day} Mar 2025 10:{minute:02d}:00 +0100
Message-ID: <{n}.notes@example.org>
In-Reply-To: <{previous}.notes@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer-{n}"

--outer-{n}
Content-Type: multipart/alternative; boundary="inner-{n}"

--inner-{n}
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

{plain}
--inner-{n}
Content-Type: text/html; charset="utf-8"

<p>{html}</p>
--inner-{n}--

--outer-{n}
Content-Type: application/octet-stream; name="table-{n}.bin"
Content-Disposition: attachment; filename="table-{n}.bin"
Content-Transfer-Encoding: base64

{attachment}
--outer-{n}--
"""

PLAIN = ("The engine might act upon other things besides number, were objects found whose mutual=\n"
         " fundamental relations could be expressed by those of the abstract science of operations =E2=80=94=\n"
         " caf=C3=A9 line {n}.\n")


def message_text(n):
    attachment = base64.encodebytes(bytes((n * 7 + k) % 256 for k in range(600))).decode()
    return TEMPLATE.format(n=n, previous=n - 1, day=1 + n % 28, minute=n % 60, plain=PLAIN.format(n=n) * 3,
                           html="Operations &amp; numbers, line %d" % n, attachment=attachment)


total = 0
for n in range(messages):
    message = email.message_from_string(message_text(n), policy=email.policy.default)
    addresses = [address.addr_spec for header in ("from", "to", "cc") for address in message[header].addresses]
    total += len(addresses) + message["date"].datetime.day + len(str(message["subject"]))
    for part in message.walk():
        if part.get_content_maintype() == "multipart":
            continue
        content = part.get_content()
        total += len(content)
        if part.get_filename():
            total += len(part.get_filename())
    total += len(message.get_body(preferencelist=("plain",)).get_content())
print("email", messages, total)
