"""The committed Streamlit server settings are the safe ones (read from the file and as Streamlit
resolves them), and the upload byte cap agrees with the engine's own validation budget."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_PATH = REPO_ROOT / ".streamlit" / "config.toml"

SAFE_VALUES = {
    ("server", "enableXsrfProtection"): True,  # forms/uploads need the XSRF cookie + token
    ("server", "enableCORS"): True,  # True = CORS protection on: same origin only
    ("server", "enableStaticServing"): False,  # nothing served from ./static
    ("client", "showErrorDetails"): "none",  # no tracebacks in the browser
    ("browser", "gatherUsageStats"): False,  # no network calls home
}


@pytest.fixture(scope="module")
def settings() -> dict:
    assert CONFIG_PATH.is_file(), f"{CONFIG_PATH} is missing"
    with CONFIG_PATH.open("rb") as handle:
        return tomllib.load(handle)


@pytest.mark.parametrize(("key", "expected"), list(SAFE_VALUES.items()),
                         ids=[".".join(key) for key in SAFE_VALUES])
def test_file_sets_the_safe_value(settings, key, expected):
    section, option = key
    assert settings.get(section, {}).get(option) == expected, f"{section}.{option}"


def test_cors_has_no_extra_allowed_origins(settings):
    assert not settings["server"].get("corsAllowedOrigins"), "CORS must not allow other origins"


def test_upload_size_is_capped_and_matches_the_validation_budget(settings):
    from unet_demo.data.validation import MAX_BYTES

    max_upload_mb = settings["server"]["maxUploadSize"]
    assert isinstance(max_upload_mb, int) and 1 <= max_upload_mb <= 200
    # Streamlit counts megabytes of 2**20 bytes; the engine refuses the same size server-side.
    assert max_upload_mb * 1024 * 1024 == MAX_BYTES


def test_every_key_is_a_real_streamlit_option(settings):
    from streamlit import config

    known = set(config._config_options_template)
    for section, values in settings.items():
        for option in values:
            assert f"{section}.{option}" in known, f"unknown option {section}.{option} (typo?)"


def test_streamlit_resolves_the_same_safe_values(monkeypatch):
    """What the server will actually use: no global config or env var overrides them."""
    from streamlit import config

    for (section, option) in SAFE_VALUES:
        env_var = config._config_options_template[f"{section}.{option}"].env_var
        monkeypatch.delenv(env_var, raising=False)
    monkeypatch.chdir(REPO_ROOT)
    config.get_config_options(force_reparse=True)
    try:
        for (section, option), expected in SAFE_VALUES.items():
            key = f"{section}.{option}"
            assert config.get_option(key) == expected, key
            assert config._config_options[key].where_defined == str(CONFIG_PATH), key
        assert config.get_option("server.maxUploadSize") <= 200
        assert config.get_option("server.corsAllowedOrigins") in (None, [])
    finally:
        config.get_config_options(force_reparse=True)
