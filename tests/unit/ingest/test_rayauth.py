"""Ray's token authentication for a Ray that is not loopback-only: where the token comes from."""

from __future__ import annotations

import pytest

from shardmon.ingest.rayauth import token_auth_env
from shardmon.model.errors import ConfigError


def test_the_head_writes_a_token_the_others_read(tmp_path):
    token = tmp_path / "ray" / "auth_token"
    env = token_auth_env(str(token), create=True, environ={})
    assert env == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    text = token.read_text()
    assert len(text) == 64 and int(text, 16) >= 0 and token.stat().st_mode & 0o777 == 0o600
    assert token_auth_env(str(token), environ={}) == env  # a worker, the ingest service
    token_auth_env(str(token), create=True, environ={})
    assert token.read_text() == text  # an existing token is kept


def test_no_token_is_an_error_naming_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^ingest\.ray_auth_token_file: no Ray authentication token at"):
        token_auth_env(str(tmp_path / "missing"), environ={})


def test_rays_own_sources_and_an_explicit_opt_out(tmp_path):
    assert token_auth_env(None, environ={"RAY_AUTH_TOKEN": "abc"}) == {"RAY_AUTH_MODE": "token"}
    path = tmp_path / "t"
    path.write_text("x" * 64)
    assert token_auth_env(None, environ={"RAY_AUTH_TOKEN_PATH": str(path)})["RAY_AUTH_TOKEN_PATH"] == str(path)
    assert token_auth_env(None, environ={"RAY_AUTH_MODE": "disabled"}) == {}
