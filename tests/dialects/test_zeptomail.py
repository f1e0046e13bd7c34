"""ZeptoMail, with the examples of its "Email sending with SMTP" page (seed 001):

    message.addHeader("X-TM-FILE-KEY", "filecachekey,filecachekey");
    message.addHeader("X-TM-FILE-KEY", "filecachekey:name,filecachekey:name");
    message.addHeader("X-TM-CLIENT-REF","testClientRef");
"""

from tests.dialects import table_tests

from postroom.dialects import FileRef, zeptomail

VALID = [
    ([("X-TM-FILE-KEY", "key1,key2")], {"attachments": (FileRef("key1"), FileRef("key2"))}),
    ([("X-TM-FILE-KEY", "key1:report.pdf,key2:photo.png")],
     {"attachments": (FileRef("key1", "report.pdf"), FileRef("key2", "photo.png"))}),
    ([("X-TM-FILE-KEY", " key1 : Q3 report.pdf , key2 ")],
     {"attachments": (FileRef("key1", "Q3 report.pdf"), FileRef("key2"))}),
    # each addHeader call adds one header
    ([("X-TM-FILE-KEY", "key1"), ("x-tm-file-key", "key2:b.txt")],
     {"attachments": (FileRef("key1"), FileRef("key2", "b.txt"))}),
    ([("X-TM-CLIENT-REF", "testClientRef")], {"client_reference": "testClientRef"}),
    ([("X-TM-OPEN-TRACK", "true"), ("X-TM-CLICK-TRACK", "false")],
     {"track_opens": True, "track_clicks": False}),
    ([("x-tm-open-track", "1"), ("X-Tm-Click-Track", "YES")],
     {"track_opens": True, "track_clicks": True}),
    ([("X-TM-CLIENT-REF", "  ")], {}),  # empty: as if absent
]

INVALID = [
    ([("X-TM-FILE-KEY", "key1,,key2")], "empty file key"),
    ([("X-TM-FILE-KEY", "key1,")], "empty file key"),
    ([("X-TM-FILE-KEY", "key1:")], 'empty file name after "key1"'),
    ([("X-TM-FILE-KEY", "bad key")], 'bad file key "bad key"'),
    ([("X-TM-FILE-KEY", ",".join(f"k{i}" for i in range(51)))], "more than 50 files"),
    ([("X-TM-FILE-KEY", "k:" + "n" * 256)], "file name is longer than 255"),
    ([("X-TM-OPEN-TRACK", "maybe")], 'expected yes or no, not "maybe"'),
    ([("X-TM-CLICK-TRACK", "2")], "expected yes or no"),
    ([("X-TM-CLIENT-REF", "x" * 1001)], "longer than 1000 characters"),
    ([("X-TM-CLIENT-REF", "a\x00b")], "control characters"),
    ([("X-TM-CLIENT-REF", "a"), ("X-TM-CLIENT-REF", "b")], "given more than once"),
]

test_valid, test_invalid = table_tests(zeptomail, VALID, INVALID)
