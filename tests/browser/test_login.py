"""Logging in through the Airflow UI's login page (simple auth manager, a real user and password)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit


def test_the_login_form_refuses_a_wrong_password_and_opens_the_ui_with_the_right_one(browser, airflow_ui):
    seen = browser.run("login")

    login = urlsplit(seen["loginUrl"])
    assert login.path == "/auth/login", f"expected the UI to send a new visitor to /auth/login, it showed {login}"
    assert "Invalid credentials" in seen["refusal"], (
        f"expected the page to say 'Invalid credentials' for a wrong password, it said {seen['refusal']!r}"
    )
    assert urlsplit(seen["urlAfterWrongPassword"]).path == "/auth/login", (
        f"expected a wrong password to stay on the login page, it went to {seen['urlAfterWrongPassword']}"
    )
    after = urlsplit(seen["urlAfterLogin"])
    assert (after.path, after.netloc) == ("/", urlsplit(airflow_ui.base_url).netloc), (
        f"expected the login to return to the UI's home page {airflow_ui.base_url}/, it went to {after.geturl()}"
    )
    assert "Welcome" in seen["headings"], f"expected the home page's 'Welcome', the headings are {seen['headings']}"
    assert "_token" in seen["cookies"], f"expected the session cookie _token, the cookies are {seen['cookies']}"
    # the UI's own API calls are authorised by that session, and only by it
    assert seen["menusStatusBeforeLogin"] == 401, (
        f"expected /ui/auth/menus to answer 401 before the login, it answered {seen['menusStatusBeforeLogin']}"
    )
    assert seen["menusStatus"] == 200, f"/ui/auth/menus answered {seen['menusStatus']}: {seen['menus']}"
    assert "Connections" in seen["menus"]["authorized_menu_items"], seen["menus"]
    assert [p.rsplit("/", 1)[-1] for p in seen["screenshots"]] == [
        "01-login-form.png", "02-wrong-password.png", "03-login-form.png", "04-logged-in.png"
    ]
    assert all(Path(p).stat().st_size > 0 for p in seen["screenshots"]), seen["screenshots"]
