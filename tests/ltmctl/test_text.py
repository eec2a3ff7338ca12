"""Cut text always ends with an ellipsis: the one helper, and the places that cut with it."""

import pytest

from ltmctl.text import cut


def test_cut_keeps_short_text_and_marks_what_it_shortens():
    assert cut("abc", 3) == "abc"
    assert cut("abcd", 3) == "ab…" and len(cut("abcd", 3)) == 3
    assert cut("x" * 1000, 300).endswith("…") and len(cut("x" * 1000, 300)) == 300
    with pytest.raises(ValueError):
        cut("abc", 0)


def test_the_service_side_cut_agrees():
    from api_service.text import cut as service_cut

    for text, limit in (("abc", 3), ("abcd", 3), ("é" * 50, 10)):
        assert service_cut(text, limit) == cut(text, limit)


def test_provision_plan_fields_end_with_an_ellipsis_when_cut():
    from ltmctl.commands.provision import _fields

    shown = _fields({"labels": {"actual": "a" * 100, "desired": "b"}})
    assert "…" in shown and "a" * 60 not in shown


def test_api_log_of_a_huge_url_ends_with_an_ellipsis():
    from api_service.logs import MAX_URL_CHARS, request_record

    record = request_record("p", method="GET", url="http://h/" + "p" * 10_000, status=404, latency_s=0.001,
                            response_size=10, headers={}, remote_ip=None, protocol="HTTP/1.1", route="unmatched")
    url = record["httpRequest"]["requestUrl"]
    assert len(url) == MAX_URL_CHARS and url.endswith("…")
