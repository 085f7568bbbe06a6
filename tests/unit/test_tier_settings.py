"""TIER_INTERVAL_S: the background tiering task's period, refused without its age."""

import pytest

from interfaces.settings import SettingsError, load_settings

TIERING = {"TIER_AFTER_DAYS": "1", "S3_BUCKET": "crucible-outputs"}


def test_tiering_interval_is_off_by_default() -> None:
    assert load_settings({}).tiering.interval_s is None
    assert load_settings(TIERING).tiering.interval_s is None


def test_tiering_interval_with_its_age_is_accepted() -> None:
    settings = load_settings({**TIERING, "TIER_INTERVAL_S": "0.2"})
    assert (settings.tiering.after_days, settings.tiering.interval_s) == (1, 0.2)


@pytest.mark.parametrize(
    "environ",
    [
        {"TIER_INTERVAL_S": "60"},
        {"TIER_INTERVAL_S": "60", "S3_BUCKET": "crucible-outputs"},
    ],
)
def test_tiering_interval_without_an_age_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="TIER_INTERVAL_S") as info:
        load_settings(environ)
    assert "TIER_AFTER_DAYS" in str(info.value)


@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_bad_tiering_interval_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="TIER_INTERVAL_S"):
        load_settings({**TIERING, "TIER_INTERVAL_S": value})


@pytest.mark.parametrize("value", ["nan", "inf", "1e400"])
def test_not_a_finite_number_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="TIER_INTERVAL_S"):
        load_settings({**TIERING, "TIER_INTERVAL_S": value})
