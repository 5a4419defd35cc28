"""Workload: decodes a JSON document with json's pure-Python scanner and string decoder.

    python json_pure.py [RECORDS]

The document (records of strings with escapes and non-ASCII text, numbers,
nested objects and arrays) is made with json.dumps; it is then decoded with a
JSONDecoder whose scanner is json.scanner.py_make_scanner and whose string
decoder is json.decoder.py_scanstring (also the module-level name JSONObject
uses for keys), so that none of the _json C accelerator runs in the decoding,
whether json was imported before this program or not. The benchmark hooks
every function of json and its submodules.
"""

import json
import json.decoder
import json.scanner
import sys

records = int(sys.argv[1]) if len(sys.argv) > 1 else 7000


def document(count):
    """The records; plain loops, so that no comprehension frame of this script joins the traced calls on 3.11."""
    words = ["alpha", "beta", "gamma", "d\u00e9j\u00e0 vu", "tab\there", "quote\"d", "line\nbreak", "\u65e5\u672c",
             "back\\slash", "plain"]
    out = []
    for index in range(count):
        tags = []
        for k in range(3):
            tags.append(words[(index + k) % len(words)])
        out.append({"id": index, "name": words[index % len(words)] + str(index), "price": index * 1.25,
                    "active": index % 3 == 0, "tags": tags,
                    "owner": {"login": "user%d" % (index % 97), "score": -index, "note": None}})
    return out


text = json.dumps(document(records))
json.decoder.scanstring = json.decoder.py_scanstring  # JSONObject reads its keys with the module's name
decoder = json.JSONDecoder()
decoder.parse_string = json.decoder.py_scanstring
decoder.scan_once = json.scanner.py_make_scanner(decoder)
assert decoder.scan_once.__module__ == "json.scanner"  # the pure scanner, not _json's
decoded = decoder.decode(text)
assert len(decoded) == records
total = 0
for record in decoded:
    total += len(record["name"])
print("json", records, total)
