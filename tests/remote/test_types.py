"""The boundary's vocabulary: stable label values, validation, secrets kept out of reprs."""

from __future__ import annotations

import pytest

from bot.remote import (
    Confirmed,
    Ended,
    EndReason,
    LoginRefused,
    LogoutOutcome,
    NextStep,
    RefusalReason,
    RemoteSession,
    Sentence,
    ServiceInfo,
    ServiceUnavailable,
    Step,
    Transient,
    TransientReason,
    Verdict,
    all_outcome_labels,
    outcome_labels,
)


def test_label_values_are_a_contract() -> None:
    # Stored in stats rows and exported as metric labels: renaming one loses history.
    assert [v.value for v in Verdict] == ["confirmed", "ended", "transient"]
    assert [r.value for r in EndReason] == [
        "expired",
        "not_found",
        "not_authenticated",
        "replaced",
        "revoked",
    ]
    assert [r.value for r in TransientReason] == [
        "timeout",
        "network",
        "http_status",
        "not_data",
        "bad_answer",
        "rate_limited",
        "service_error",
        "unexpected",
    ]
    assert [o.value for o in LogoutOutcome] == ["logged_out", "already_ended", "not_confirmed"]
    assert [r.value for r in RefusalReason] == [
        "bad_credentials",
        "unknown_account",
        "blocked",
        "rate_limited",
        "misconfigured",
        "refused",
    ]


def test_outcome_labels() -> None:
    text = Sentence("x")
    assert outcome_labels(Confirmed()) == ("confirmed", "")
    assert outcome_labels(Ended(EndReason.EXPIRED)) == ("ended", "expired")
    assert outcome_labels(Transient(TransientReason.TIMEOUT, text)) == ("transient", "timeout")
    labels = all_outcome_labels()
    assert len(labels) == len(set(labels)) == 1 + len(EndReason) + len(TransientReason)
    assert ("ended", "revoked") in labels and ("confirmed", "") in labels


def test_secret_steps() -> None:
    assert {step for step in Step if step.secret} == {Step.PASSWORD, Step.TOKEN}


@pytest.mark.parametrize(
    ("service_id", "name", "steps"),
    [
        ("Spaces", "Spaces", (Step.LOGIN_NAME,)),
        ("spaces.pe", "spaces.pe", (Step.TOKEN,)),
        ("", "x", (Step.TOKEN,)),
        ("ok", " ", (Step.TOKEN,)),
        ("ok", "ok", ()),
        ("ok", "ok", (Step.PASSWORD, Step.PASSWORD)),
    ],
)
def test_service_info_is_validated(service_id: str, name: str, steps: tuple[Step, ...]) -> None:
    with pytest.raises(ValueError):
        ServiceInfo(service_id, name, steps)


def test_a_token_only_service_fits() -> None:
    info = ServiceInfo("spaces_pe", "spaces.pe", (Step.TOKEN,))
    session = RemoteSession("spaces_pe", "cus_1", "Shop", {"token": "tok-secret"})
    assert info.steps[0].secret
    assert "tok-secret" not in repr(session)


@pytest.mark.parametrize(
    "secrets", [{}, {"Bad Name": "v"}, {"sid": 1}], ids=["empty", "name", "value"]
)
def test_session_secrets_are_validated(secrets: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        RemoteSession("spaces", "1", "x", secrets)  # type: ignore[arg-type]


def test_secrets_stay_out_of_reprs() -> None:
    confirmed = Confirmed(display_name="n", renewed={"ck": "renewed-ck"})
    step = NextStep(Step.CAPTCHA, picture=b"\x89PNG-picture-bytes", attempt={"c": "cookie-v"})
    assert "renewed-ck" not in repr(confirmed)
    assert "picture-bytes" not in repr(step) and "cookie-v" not in repr(step)


def test_errors_say_what_without_secrets() -> None:
    refused = LoginRefused("sendspace", RefusalReason.BAD_CREDENTIALS, Sentence("k"), "error 8")
    down = ServiceUnavailable("spaces", TransientReason.TIMEOUT, Sentence("k"))
    assert str(refused) == "sendspace: login refused, bad_credentials (error 8)"
    assert str(down) == "spaces: unavailable, timeout"
    assert not LogoutOutcome.NOT_CONFIRMED.ended
    assert LogoutOutcome.ALREADY_ENDED.ended and LogoutOutcome.LOGGED_OUT.ended
