"""What leaves the operator in text: known secret values and credential shapes are taken out."""

from __future__ import annotations

from incidentops.redaction import REDACTED, excerpt, origin, redact, safe_url


def test_known_values_and_credential_shapes_are_redacted() -> None:
    webhook = "https://hooks.slack.com/services/T000/B000/XXXXSECRET"
    text = (
        f"posted to {webhook}; Authorization: Bearer abcdefgh12345678; "
        'config: {"smtp_auth_password": "hunter2hunter2", api_key=AKIAABCDEFGHIJKLMNOP} '
        "token xoxb-1234-5678-abcdef and https://bob:s3cret@db.internal/x"
    )
    out = redact(text, [webhook, None, ""])
    for secret in ("XXXXSECRET", "abcdefgh12345678", "hunter2hunter2", "AKIAABCDEFGHIJKLMNOP", "xoxb-1234", "s3cret"):
        assert secret not in out, secret
    assert REDACTED in out and "db.internal/x" in out


def test_excerpts_are_short_single_lines_redacted_before_they_are_cut() -> None:
    body = "global:\n  resolve_timeout: 5m\n  slack_api_url: https://hooks.slack.com/services/T/B/C\n" + "x" * 500
    shown = excerpt(body, 120)
    assert "\n" not in shown and len(shown) <= 120
    assert "services/T/B/C" not in shown


def test_urls_are_shown_without_userinfo_or_query() -> None:
    assert (
        safe_url("https://u:p@cache.example.com:8443/flush?token=abc")
        == f"https://cache.example.com:8443/flush?{REDACTED}"
    )
    assert origin("https://hooks.slack.com/services/T/B/C") == "https://hooks.slack.com"
