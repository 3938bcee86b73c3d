from __future__ import annotations

from engine.errors import SourceSpan
from engine.texts import parse_template

SPAN = SourceSpan("r.yaml", 3, 10)


def render(text: str, **values: object) -> str:
    template, problems = parse_template(text, SPAN)
    assert problems == []
    return template.render(lambda path: values.get(path.replace(".", "__")))


def test_number_formats_and_missing_values() -> None:
    assert render("DSCR {f.dscr:.2f}", f__dscr=1.3456) == "DSCR 1.35"
    assert render("{f.g:.0%} growth", f__g=-0.234) == "-23% growth"
    assert render("{a.amount:,}", a__amount=48000000.0) == "48,000,000.0"
    assert render("{a.amount}", a__amount=48000000.0) == "48000000"
    assert render("tier {tier}, dpd {c.dpd}") == "tier n/a, dpd n/a"


def test_a_format_that_does_not_fit_the_value_renders_it_plainly() -> None:
    assert render("{b.industry:.2f}", b__industry="energy") == "energy"


def test_author_text_is_never_a_template() -> None:
    text = "{{ config }} {{% for x in y %}} {{7*7}} __import__('os')"
    template, problems = parse_template(text, SPAN)
    assert problems == []
    assert template.render(lambda p: "X") == "{ config } {% for x in y %} {7*7} __import__('os')"
    _, problems = parse_template("{% for x in y %}", SPAN)
    assert [p.code for p in problems] == ["text-placeholder"]


def test_value_text_is_inserted_verbatim() -> None:
    assert render("name {b.name}", b__name="{b.secret} <script>") == "name {b.secret} <script>"


def test_problems_point_into_the_text() -> None:
    _, problems = parse_template("ok {f.x:zz} and {not a path} and {", SPAN)
    codes = [(p.code, p.span.column) for p in problems]
    assert codes == [("text-format", 13), ("text-placeholder", 26), ("text-brace", 43)]
