"""Valid/invalid tables for the named field types, the templating and the SQL text analysis."""

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from signals_dagster.spec.fields import (
    Cron,
    Duration,
    Grain,
    IsoDate,
    MetricName,
    PositiveDuration,
    TagKey,
    TagValue,
    Timezone,
    format_duration,
    grain_timedelta,
)
from signals_dagster.spec.sqltext import (
    bind_params,
    collector_kind,
    normalize,
    output_aliases,
    strip_literals,
)
from signals_dagster.spec.templating import TemplateProblem, render


def valid(field: Any, value: object) -> object:
    """Validate `value` as the named field type."""
    return TypeAdapter(field).validate_python(value)


def invalid(field: Any, value: object) -> str:
    """Validate `value`, expecting failure; return the error message."""
    with pytest.raises(ValidationError) as info:
        TypeAdapter(field).validate_python(value)
    (error,) = info.value.errors()
    return str(error["msg"])


# --- Grain ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "grain"),
    [
        ("10s", "10s"),
        ("30s", "30s"),
        ("60s", "1m"),
        ("1m", "1m"),
        ("5m", "5m"),
        ("15m", "15m"),
        ("30m", "30m"),
        ("60m", "1h"),
        ("1h", "1h"),
        ("2h", "2h"),
        ("3h", "3h"),
        ("4h", "4h"),
        ("6h", "6h"),
        ("8h", "8h"),
        ("12h", "12h"),
        ("24h", "24h"),
        ("1d", "24h"),
        ("1440m", "24h"),
        ("86400s", "24h"),
        ("7d", "7d"),
        ("1w", "7d"),
        ("168h", "7d"),
        ("1mo", "1mo"),
        ("1month", "1mo"),
        (" 24H ", "24h"),
    ],
)
def test_grain_valid_and_normalised(text: str, grain: str) -> None:
    assert valid(Grain, text) == grain


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2d", "unsupported grain '2d'"),
        ("48h", "unsupported grain '48h'"),
        ("5h", "unsupported grain '5h'"),
        ("7m", "unsupported grain '7m'"),
        ("45m", "unsupported grain '45m'"),
        ("25h", "unsupported grain '25h'"),
        ("2w", "unsupported grain '2w'"),
        ("500ms", "unsupported grain '500ms'"),
        ("1.5s", "unsupported grain '1.5s'"),
        ("0s", "unsupported grain '0s'"),
        ("daily", "invalid duration 'daily'"),
        ("2mo", "invalid duration '2mo'"),
        ("1y", "invalid duration '1y'"),
        ("-1h", "invalid duration '-1h'"),
        ("", "invalid duration ''"),
        (60, "grain must be a string"),
        (None, "grain must be a string"),
        ("1M", "ambiguous grain '1M'"),
        ("5M", "ambiguous grain '5M'"),
    ],
)
def test_grain_invalid(value: object, message: str) -> None:
    error = invalid(Grain, value)
    assert message in error
    if "unsupported" in message:
        assert "10s, 30s, 1m" in error  # the message lists what is allowed


@pytest.mark.parametrize(
    ("grain", "delta"),
    [("10s", timedelta(seconds=10)), ("1h", timedelta(hours=1)), ("7d", timedelta(days=7))],
)
def test_grain_timedelta(grain: str, delta: timedelta) -> None:
    assert grain_timedelta(grain) == delta


def test_month_grain_has_no_fixed_length() -> None:
    assert grain_timedelta("1mo") is None


# --- Duration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "delta"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("24h", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("1w", timedelta(days=7)),
        ("500ms", timedelta(milliseconds=500)),
        ("0s", timedelta(0)),
        (" 10s ", timedelta(seconds=10)),
        (15, timedelta(seconds=15)),
        (0.5, timedelta(milliseconds=500)),
        (timedelta(minutes=3), timedelta(minutes=3)),
    ],
)
def test_duration_valid(value: object, delta: timedelta) -> None:
    assert valid(Duration, value) == delta


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "invalid duration ''"),
        ("soon", "invalid duration 'soon'"),
        ("15", "invalid duration '15'"),
        ("-5s", "invalid duration '-5s'"),
        ("1h 30m", "invalid duration '1h 30m'"),
        ("5M", "invalid duration '5M'"),
        ("1y", "invalid duration '1y'"),
        (True, "expected a duration such as '15m', got True"),
        (None, "expected a duration such as '15m', got None"),
        ([1], "expected a duration"),
    ],
)
def test_duration_invalid(value: object, message: str) -> None:
    assert message in invalid(Duration, value)


@pytest.mark.parametrize("value", ["0s", 0, "0ms"])
def test_positive_duration_refuses_zero(value: object) -> None:
    assert invalid(PositiveDuration, value) == "Value error, must be a positive duration"


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(days=1), "24h"),
        (timedelta(minutes=15), "15m"),
        (timedelta(seconds=10), "10s"),
        (timedelta(seconds=90), "90s"),
        (timedelta(hours=2), "2h"),
    ],
)
def test_format_duration(delta: timedelta, text: str) -> None:
    assert format_duration(delta) == text


# --- Cron ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalised"),
    [
        ("15 0 * * *", "15 0 * * *"),
        ("*/5 * * * *", "*/5 * * * *"),
        ("0 9 * * 1-5", "0 9 * * 1-5"),
        ("0 0 1 * *", "0 0 1 * *"),
        ("0 6,18 * * *", "0 6,18 * * *"),
        ("  15   0 * *  * ", "15 0 * * *"),
    ],
)
def test_cron_valid(text: str, normalised: str) -> None:
    assert valid(Cron, text) == normalised


@pytest.mark.parametrize(
    "text",
    ["61 0 * * *", "0 25 * * *", "0 0 32 * *", "every day", "* * * *", "0 15 0 * * *", ""],
)
def test_cron_invalid(text: str) -> None:
    error = invalid(Cron, text)
    assert f"invalid cron expression {text!r}" in error
    assert "5 fields: minute hour day month weekday" in error


def test_cron_must_be_a_string() -> None:
    assert "valid string" in invalid(Cron, 5)


# --- Timezone ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_timezone_valid(name: str) -> None:
    assert valid(Timezone, name) == name


@pytest.mark.parametrize(
    "name", ["Berlin", "Mars/Olympus_Mons", "", "Europe/", "../etc/passwd", "GMT+25"]
)
def test_timezone_invalid(name: str) -> None:
    error = invalid(Timezone, name)
    assert f"unknown timezone {name!r}" in error
    assert "IANA name" in error


# --- IsoDate -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2026-01-01", "2026-01-01"),
        ("2024-02-29", "2024-02-29"),
        (date(2026, 3, 1), "2026-03-01"),  # YAML reads an unquoted date as a date
    ],
)
def test_iso_date_valid(value: object, text: str) -> None:
    assert valid(IsoDate, value) == text


@pytest.mark.parametrize(
    "value",
    [
        "2026/01/01",
        "2026-13-01",
        "2025-02-29",
        "01.02.2026",
        "2026-01-01T00:00:00",
        "yesterday",
        "",
        datetime(2026, 1, 1, 10, 0),  # YAML reads `2026-01-01 10:00` as a datetime
    ],
)
def test_iso_date_invalid(value: object) -> None:
    error = invalid(IsoDate, value)
    assert "invalid date" in error
    assert "(expected YYYY-MM-DD)" in error


# --- MetricName / TagKey / TagValue ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["core.users.total", "orders_revenue", "_private", "a", "ns:metric-name.v2", "x" * 200],
)
def test_metric_name_valid(name: str) -> None:
    assert valid(MetricName, name) == name


@pytest.mark.parametrize(
    "name", ["", "orders revenue", "1st.metric", ".leading.dot", "naïve", "a/b", "x" * 201]
)
def test_metric_name_invalid(name: str) -> None:
    invalid(MetricName, name)


@pytest.mark.parametrize("key", ["env", "customer_id", "k8s.namespace", "team:owner", "x" * 100])
def test_tag_key_valid(key: str) -> None:
    assert valid(TagKey, key) == key


@pytest.mark.parametrize("key", ["", "data center", "9lives", "-dash", "a=b", "x" * 101])
def test_tag_key_invalid(key: str) -> None:
    invalid(TagKey, key)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("prod", "prod"),
        ("", ""),
        (1, "1"),
        (0, "0"),
        (-7, "-7"),
        (1.5, "1.5"),
        (True, "true"),
        (False, "false"),
        (10**20, "100000000000000000000"),
    ],
)
def test_tag_value_stringified(value: object, text: str) -> None:
    assert valid(TagValue, value) == text


@pytest.mark.parametrize("value", [None, ["a"], {"a": 1}])
def test_tag_value_invalid(value: object) -> None:
    assert "valid string" in invalid(TagValue, value)


# --- templating.render ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "rendered"),
    [
        ('host: {{ getEnv "HOST" }}\n', {"HOST": "db1"}, "host: db1\n"),
        ('host: {{ getEnv "HOST" }}\n', {"HOST": ""}, "host: \n"),  # set, even when empty
        ('host: {{ getEnvOrDefault "HOST" "local" }}\n', {"HOST": "db1"}, "host: db1\n"),
        ('host: {{ getEnvOrDefault "HOST" "local" }}\n', {}, "host: local\n"),
        ('host: {{ getEnvOrDefault "HOST" "local" }}\n', {"HOST": ""}, "host: local\n"),
        ('host: {{getEnvOrDefault "HOST" "local"}}\n', {}, "host: local\n"),
        ("host: {{ getEnvOrDefault `HOST` `a b` }}\n", {}, "host: a b\n"),
        ('host: {{ getEnvOrDefault "HOST" "a\\"b" }}\n', {}, 'host: a"b\n'),
        ('host: {{ getEnvOrDefault "HOST" "" }}\n', {}, "host: \n"),
        ('a: {{ getEnv "A" }}-{{ getEnv "B" }}\n', {"A": "1", "B": "2"}, "a: 1-2\n"),
        ('a: {{\n  getEnv "A"\n}}\nb: 2\n', {"A": "x"}, "a: x\n\n\nb: 2\n"),
    ],
)
def test_render_valid(text: str, env: dict[str, str], rendered: str) -> None:
    assert render(text, env) == (rendered, [])


@pytest.mark.parametrize(
    "text",
    [
        "name: plain\nsql: SELECT 1 AS value\n",
        "sinks: {console: {type: console}}\n",
        'agg: \'[{"$group": {"_id": 0}}]\'\n',
        "a: '{ not a template }'\n",
        "",
    ],
)
def test_render_leaves_text_without_templates_unchanged(text: str) -> None:
    assert render(text, {}) == (text, [])


def test_render_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNALS_TEST_RENDER_VAR", "from-os")
    assert render('{{ getEnv "SIGNALS_TEST_RENDER_VAR" }}') == ("from-os", [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{{ env "HOME" }}', "unknown template function 'env' (known: getEnv, getEnvOrDefault)"),
        ("{{ .Values.host }}", "unknown template function '.Values.host'"),
        ('{{ getenv "HOME" }}', "unknown template function 'getenv'"),
        ('{{ getEnv "A" "B" }}', "getEnv takes 1 argument(s), got 2"),
        ("{{ getEnv }}", "getEnv takes 1 argument(s), got 0"),
        ('{{ getEnvOrDefault "A" }}', "getEnvOrDefault takes 2 argument(s), got 1"),
        ('{{ getEnvOrDefault "A" "b" "c" }}', "getEnvOrDefault takes 2 argument(s), got 3"),
        ("{{ getEnv HOME }}", "getEnv: argument HOME must be a double-quoted string"),
        ('{{ getEnv "SIGNALS_TEST_UNSET" }}', "environment variable SIGNALS_TEST_UNSET is not set"),
        ("{{ }}", "empty template action"),
        ('{{ getEnv "A"', "unclosed template action '{{'"),
        ("uri: x{{y", "unclosed template action '{{'"),
    ],
)
def test_render_problems(text: str, message: str) -> None:
    rendered, problems = render(text, {"A": "a"})
    assert len(problems) == 1
    assert problems[0].line == 1
    assert message in problems[0].message
    assert "{{" not in rendered or "unclosed" in message


def test_render_failed_action_leaves_empty_text() -> None:
    assert render('a: "{{ getEnv "MISSING" }}"\n', {})[0] == 'a: ""\n'


def test_render_reports_every_problem_with_its_line() -> None:
    text = (
        "name: x\n"
        "\n"
        'a: {{ nope "x" }}\n'
        "b: ok\n"
        'c: {{ getEnv "UNSET_ONE" }} {{ getEnv "UNSET_TWO" }}\n'
        "d: {{\n"
        '  getEnvOrDefault "X"\n'
        "}}\n"
        'e: {{ getEnv "SET" }}\n'
        "f: {{ open\n"
    )
    _, problems = render(text, {"SET": "yes"})
    assert [(p.line, p.message.split(" (")[0]) for p in problems] == [
        (3, "unknown template function 'nope'"),
        (5, "environment variable UNSET_ONE is not set"),
        (5, "environment variable UNSET_TWO is not set"),
        (6, "getEnvOrDefault takes 2 argument(s), got 1"),
        (10, "unclosed template action '{{'"),
    ]


def test_render_keeps_line_numbers_of_later_lines() -> None:
    text = 'a: {{\n  getEnvOrDefault "A" "1"\n}}\nb: {{ bad }}\n'
    rendered, problems = render(text, {})
    assert rendered.splitlines()[3] == "b: "
    assert problems == [
        TemplateProblem(4, "unknown template function 'bad' (known: getEnv, getEnvOrDefault)")
    ]


def test_render_refuses_a_value_with_a_newline() -> None:
    rendered, problems = render('sql: {{ getEnv "Q" }}\nb: 1\n', {"Q": "SELECT 1;\nDROP x"})
    assert problems == [TemplateProblem(1, "template value contains a newline")]
    assert rendered.count("\n") == 2


# --- sqltext -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "params"),
    [
        (
            "SELECT 1 AS value WHERE t >= :window_start AND t < :window_end",
            {"window_start", "window_end"},
        ),
        ("SELECT 1 AS value WHERE t >= :window_start::timestamptz", {"window_start"}),
        ("SELECT 1 AS value WHERE t < :window_end::date + 1", {"window_end"}),
        ("SELECT 1 AS value WHERE t < CAST(:window_end AS timestamptz)", {"window_end"}),
        ("SELECT 1 AS value WHERE a = :foo::int", {"foo"}),
        ("SELECT 1 AS value WHERE a = :x AND b = :y", {"x", "y"}),
        ("SELECT 1 AS value WHERE t >= :window_start_date", {"window_start_date"}),
        ("SELECT x::int AS value", set()),
        ("SELECT x::int::text AS value", set()),
        ("SELECT arr[1:2]::int[] AS value", set()),
        ("SELECT ':foo' AS value", set()),
        ("SELECT 'it''s :foo' AS value", set()),
        ("SELECT to_char(t, 'HH24:MI') AS value", set()),
        ('SELECT "weird:col" AS value', set()),
        ("SELECT `my:col` AS value", set()),
        ("SELECT 1 AS value -- WHERE a = :foo\n", set()),
        ("SELECT 1 AS value /* :foo\n :bar */", set()),
        ("SELECT $$ :foo $$ AS value", set()),
        ("SELECT $q$ :foo $q$ AS value", set()),
        ("SELECT 1 AS value WHERE a = \\:x", set()),
        ("SELECT 1 AS value -- :foo\nWHERE t < :window_end", {"window_end"}),
    ],
)
def test_bind_params(sql: str, params: set[str]) -> None:
    assert bind_params(sql) == params


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1 AS value WHERE t >= :window_start AND t < :window_end", "windowed"),
        ("SELECT 1 AS value WHERE t >= :window_start::timestamptz", "windowed"),
        ("SELECT SUM(x) AS value FROM t WHERE t < :window_end", "as-of"),
        ("SELECT COUNT(*) AS value FROM users", "snapshot"),
        ("SELECT COUNT(*) AS value FROM users -- :window_start", "snapshot"),
        ("SELECT ':window_end' AS value", "snapshot"),
    ],
)
def test_collector_kind(sql: str, kind: str) -> None:
    assert collector_kind(bind_params(sql)) == kind


def test_normalize_separates_a_cast_from_its_parameter() -> None:
    assert normalize("t >= :window_start::timestamptz") == "t >= :window_start ::timestamptz"
    assert normalize("SELECT x::int") == "SELECT x::int"


def test_strip_literals_keeps_length_and_lines() -> None:
    sql = "SELECT 'a:b' AS v -- :c\n/* :d */ FROM t"
    stripped = strip_literals(sql)
    assert len(stripped) == len(sql)
    assert stripped.count("\n") == sql.count("\n")
    assert ":" not in stripped


@pytest.mark.parametrize(
    ("sql", "aliases"),
    [
        ("SELECT account AS customer, COUNT(*) AS value FROM orders", {"customer", "value"}),
        ("select account as Customer, count(*) as value\nfrom orders", {"customer", "value"}),
        ('SELECT a AS "region", 1 AS value FROM t', {"region", "value"}),
        ("SELECT 'x AS fake, ' AS value FROM t", {"value"}),
        ("SELECT COUNT(*) FROM t", set()),
    ],
)
def test_output_aliases(sql: str, aliases: set[str]) -> None:
    assert output_aliases(sql) == aliases
