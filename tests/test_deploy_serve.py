"""deploy/serve.py's choice of Ray authentication, without starting anything."""
from __future__ import annotations

import stat
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "deploy"))
import serve  # noqa: E402  (deploy/serve.py: what the README's commands run)


def test_a_head_started_where_no_token_exists_gets_one_of_its_own(tmp_path):
    home = tmp_path / "home"
    env = serve.ray_auth_env(tmp_path, start_head=True, environ={}, home=home)
    token = Path(env["RAY_AUTH_TOKEN_PATH"])
    assert env["RAY_AUTH_MODE"] == "token"
    assert token.parent == tmp_path
    text = token.read_text()
    assert len(text) == 64 and int(text, 16) >= 0                # Ray's format: 256 bits in hex
    assert stat.S_IMODE(token.stat().st_mode) == 0o600           # a secret: this user only
    assert not (home / ".ray").exists()                          # the user's own files untouched
    again = serve.ray_auth_env(tmp_path, start_head=True, environ={}, home=home)
    assert again == env and token.read_text() == text            # a restart keeps the cluster's token


def test_an_existing_token_is_used_and_none_is_made(tmp_path):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("f" * 64)
    assert serve.ray_auth_env(tmp_path, True, environ={}, home=home) == {"RAY_AUTH_MODE": "token"}
    for named in ({"RAY_AUTH_TOKEN": "abc"}, {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "mine")}):
        assert serve.ray_auth_env(tmp_path, True, environ=named, home=tmp_path / "empty") == {"RAY_AUTH_MODE": "token"}
    assert not (tmp_path / serve.RAY_TOKEN_FILE).exists()


def test_joining_a_cluster_never_makes_up_its_token(tmp_path):
    env = serve.ray_auth_env(tmp_path, start_head=False, environ={}, home=tmp_path / "home")
    assert env == {"RAY_AUTH_MODE": "token"}
    assert not (tmp_path / serve.RAY_TOKEN_FILE).exists()


def test_authentication_turned_off_by_the_user_stays_off(tmp_path):
    env = serve.ray_auth_env(tmp_path, start_head=True, environ={"RAY_AUTH_MODE": "disabled"}, home=tmp_path)
    assert env == {"RAY_AUTH_MODE": "disabled"}
    assert not (tmp_path / serve.RAY_TOKEN_FILE).exists()
