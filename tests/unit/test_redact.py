"""The credential registry over random secrets: every printable character and unicode, in every
form a secret may be shown in (as given, percent-encoded, the base64 of ``user:password``)."""

from __future__ import annotations

import base64
import json
import string
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyspark_experiments import redact

# Realistic secrets: at least 8 characters, any printable ASCII or unicode letter, symbol or
# punctuation, spaces included (a secret shorter than redact.MIN_SECRET is not searched for).
SECRET = st.text(
    alphabet=st.one_of(st.sampled_from(string.printable.strip() + " "), st.characters(categories=("L", "N", "P", "S"))),
    min_size=8,
    max_size=24,
).filter(lambda s: s.strip() == s and len(s.strip()) >= 8)
USER = st.text(alphabet=string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).map(lambda name: f"user-{name}")


def _forms(user: str, secret: str) -> set[str]:
    return {
        secret,
        quote(secret, safe=""),
        quote(secret),
        base64.b64encode(f"{user}:{secret}".encode()).decode(),
    }


def _shown(text: str, user: str, secret: str) -> list[str]:
    return [form for form in _forms(user, secret) if form in text]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user=USER, secret=SECRET)
def test_a_remembered_login_is_hidden_in_every_form(user, secret):
    redact.remember_login(user, secret)
    token = base64.b64encode(f"{user}:{secret}".encode()).decode()
    text = (
        f"FATAL: password authentication failed for {user!r} with {secret!r}; "
        f"url http://{user}:{quote(secret, safe='')}@host/api; echoed header Authorization: Basic {token}; "
        f"credential Basic {token}; raw {quote(secret)} and {secret}."
    )
    assert _shown(redact.hide(text), user, secret) == []


@settings(max_examples=300, deadline=None)
@given(user=USER, secret=SECRET)
def test_a_uri_password_is_hidden_once_the_uri_was_seen(user, secret):
    uri = f"postgresql://{user}:{quote(secret, safe='')}@db:5432/mlflow"
    redact.remember_uri(uri)
    for text in (uri, f"connect to {uri} failed: password {secret!r} rejected", repr({"uri": uri})):
        assert _shown(redact.hide(text), user, secret) == []
    shown = redact.hide_uri(uri)
    assert shown.endswith(":***@db:5432/mlflow") and _shown(shown, user, secret) == []


@settings(max_examples=200, deadline=None)
@given(user=USER, secret=SECRET)
def test_the_shape_of_a_url_password_is_hidden_unseen(user, secret):
    """Never remembered: the userinfo pattern alone hides a percent-encoded password."""
    encoded = quote(secret + "-unseen", safe="")
    shown = redact.hide(f"cannot open mysql+pymysql://{user}:{encoded}@db:3306/mlflow")
    assert encoded not in shown and shown.endswith(":***@db:3306/mlflow")


def test_prose_stays_readable(monkeypatch):
    """The shapes alone: secrets other tests remembered (a password "password") are set aside."""
    monkeypatch.setattr(redact, "_ordered", [])
    text = "the server asks for Basic authentication; FATAL: password authentication failed for user bob"
    assert redact.hide(text) == text


def test_password_of_reads_uris_and_libpq_strings():
    assert redact.password_of("postgresql://me:s3cret@db/mlflow") == "s3cret"
    assert redact.password_of("host=db password='a b' user=me") == "a b"
    assert redact.password_of("sqlite:///m.db") is None


@settings(max_examples=200, deadline=None)
@given(secret=SECRET)
def test_a_secret_escaped_as_repr_and_json_show_it_is_hidden(secret):
    """A server echoing ``{password!r}``, JSON output escaping quotes and non-ASCII characters, a
    form-encoded body (spaces as ``+``)."""
    redact.remember(secret)
    forms = {repr(secret)[1:-1], json.dumps(secret)[1:-1], quote_plus(secret, safe="")}
    for shown in (repr(secret), json.dumps(secret), json.dumps({"password": secret}), f"secret={quote_plus(secret)}"):
        assert not [form for form in forms if form in redact.hide(shown)], shown


def test_a_raw_question_mark_in_a_password_stays_in_the_password():
    """Unencoded, ``a@:b?c`` reads as the password ``a`` and a host ``:b``, which is no host."""
    assert redact.split_userinfo("s3://KEY:a@:b?c@bucket/x") == ("s3://", "KEY", "a@:b?c", "bucket/x")
    assert redact.split_userinfo("mysql://bob:pa?ss@db/mlflow") == ("mysql://", "bob", "pa?ss", "db/mlflow")
    assert redact.hide_uri("s3://KEY:Qx7-@:/%+#?&=' \"@bucket/runs/x") == "s3://***@bucket/runs/x"
    # an '@' in a query is no userinfo, nor one in a path without a password
    assert redact.split_userinfo("s3://bucket/path?x=a@b") == ("s3://bucket/path?x=a@b", None, None, "")
    assert redact.split_userinfo("postgresql://u:p@h/db?x=a@b") == ("postgresql://", "u", "p", "h/db?x=a@b")
    assert redact.split_userinfo("postgresql://u:p@h1:5432,h2:5433/db")[2:] == ("p", "h1:5432,h2:5433/db")
