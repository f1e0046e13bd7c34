"""Postmark's SMTP headers, with the values its documentation shows (`X-PM-TrackOpens: true`,
`X-PM-TrackLinks` None/HtmlAndText/HtmlOnly/TextOnly, metadata as `X-PM-Metadata-<key>`)."""

from tests.dialects import table_tests

from postroom.dialects import postmark

VALID = [
    ([("X-PM-Tag", "welcome-email")], {"tags": ("welcome-email",)}),
    ([("X-PM-Tag", "a, b")], {"tags": ("a, b",)}),  # one tag, commas and all
    ([("X-PM-Metadata-color", "blue"), ("X-PM-Metadata-client-id", "12345")],
     {"metadata": {"color": "blue", "client-id": "12345"}}),
    ([("X-PM-TrackOpens", "true")], {"track_opens": True}),
    ([("X-PM-TrackOpens", "false")], {"track_opens": False}),
    ([("X-PM-TrackLinks", "None")], {"track_clicks": False, "track_text_clicks": False}),
    ([("X-PM-TrackLinks", "HtmlAndText")], {"track_clicks": True, "track_text_clicks": True}),
    ([("X-PM-TrackLinks", "HtmlOnly")], {"track_clicks": True, "track_text_clicks": False}),
    ([("X-PM-TrackLinks", "textonly")], {"track_clicks": False, "track_text_clicks": True}),
    ([("X-PM-Message-Stream", "broadcasts")], {"message_stream": "broadcasts"}),
    ([("X-PM-KeepID", "true")], {}),  # stripped, no effect
]

INVALID = [
    ([("X-PM-TrackLinks", "Always")], "expected None, HtmlAndText, HtmlOnly or TextOnly"),
    ([("X-PM-TrackOpens", "sure")], "expected yes or no"),
    ([("X-PM-Tag", "a"), ("X-PM-Tag", "b")], "given more than once"),
    ([("X-PM-Tag", "t" * 1001)], "tag is longer than 1000"),
    ([("X-PM-Metadata-", "x")], "metadata key missing"),
    ([("X-PM-Metadata-color", "blue"), ("x-pm-metadata-COLOR", "red")], "given more than once"),
]

test_valid, test_invalid = table_tests(postmark, VALID, INVALID)
