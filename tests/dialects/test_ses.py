"""Amazon SES, with the header examples of its developer guide:

    X-SES-CONFIGURATION-SET: ConfigSet
    X-SES-MESSAGE-TAGS: tagName1=tagValue1, tagName2=tagValue2
"""

from tests.dialects import table_tests

from postroom.dialects import ses

VALID = [
    ([("X-SES-CONFIGURATION-SET", "ConfigSet")], {"configuration_set": "ConfigSet"}),
    ([("X-SES-MESSAGE-TAGS", "tagName1=tagValue1, tagName2=tagValue2")],
     {"metadata": {"tagName1": "tagValue1", "tagName2": "tagValue2"}}),
    ([("X-SES-MESSAGE-TAGS", "campaign=book-club"), ("X-SES-MESSAGE-TAGS", "ab_test=B_2")],
     {"metadata": {"campaign": "book-club", "ab_test": "B_2"}}),
    ([("X-SES-LIST-MANAGEMENT-OPTIONS", "contactListName; topic=topicName")],
     {"unsubscribe": True}),
    ([("X-SES-SOURCE-ARN", "arn:aws:ses:us-east-1:123456789012:identity/example.com")], {}),
]

INVALID = [
    ([("X-SES-MESSAGE-TAGS", "tagName1")], 'expected name=value, not "tagName1"'),
    ([("X-SES-MESSAGE-TAGS", "=value")], "expected name=value"),
    ([("X-SES-MESSAGE-TAGS", "a=1,")], "expected name=value"),
    ([("X-SES-MESSAGE-TAGS", "tag name=value")], '"tag name" must be 1-256 letters, digits'),
    ([("X-SES-MESSAGE-TAGS", "name=a.b")], '"a.b" must be'),
    ([("X-SES-MESSAGE-TAGS", "name=")], '"" must be'),
    ([("X-SES-CONFIGURATION-SET", "a"), ("X-SES-CONFIGURATION-SET", "b")], "given more than once"),
]

test_valid, test_invalid = table_tests(ses, VALID, INVALID)
