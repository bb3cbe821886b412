"""Secrets are masked in every shape they reach text in, whatever the URL looks like."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.runtime.redact import MASK, is_secret_name, redact, redact_text

SECRET = "S3cr"
"""Every generated secret starts so: found in the output, it leaked."""

# A password or token may hold anything but whitespace, quotes and '@'.
secret = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="@'\""
    ),
    max_size=24,
).map(lambda s: SECRET + s)
host = st.from_regex(r"[a-z][a-z0-9-]{0,10}(\.[a-z]{2,5}){0,2}", fullmatch=True)
port = st.one_of(st.just(""), st.integers(0, 999_999).map(lambda p: f":{p}"))
path = st.from_regex(r"(/[A-Za-z0-9._-]{0,8}){0,3}", fullmatch=True)
scheme = st.sampled_from(["nats", "tls", "http", "https", "postgresql+psycopg2", "ws"])


@settings(max_examples=400, deadline=None)
@given(scheme, st.text(string.ascii_letters, min_size=1, max_size=8), secret, host, port, path)
def test_a_url_password_never_survives(scheme, user, password, host, port, path) -> None:
    url = f"{scheme}://{user}:{password}@{host}{port}{path}"
    for text in (url, f"connect to {url} failed", f"{url},{scheme}://{host}{port}"):
        out = redact_text(text)
        assert SECRET not in out
        assert f"{user}:{MASK}@{host}{port}{path}" in out


@settings(max_examples=200, deadline=None)
@given(scheme, secret.filter(lambda s: ":" not in s), host, port)
def test_a_token_alone_as_user_info_is_masked(scheme, token, host, port) -> None:
    out = redact_text(f"{scheme}://{token}@{host}{port}")
    assert out == f"{scheme}://{MASK}@{host}{port}"


@settings(max_examples=200, deadline=None)
@given(
    host,
    port,
    st.sampled_from(["token", "api_key", "apikey", "access_token", "X-Auth", "password", "sig"]),
    secret.filter(lambda s: not any(c in s for c in "&#")),
)
def test_secret_query_keys_are_masked(host, port, key, value) -> None:
    out = redact_text(f"https://{host}{port}/v1?model=m&{key}={value}&page=2")
    assert SECRET not in out and f"{key}={MASK}" in out and "model=m" in out and "page=2" in out


@settings(max_examples=200, deadline=None)
@given(scheme, host, port, path)
def test_a_url_without_secrets_is_left_as_it_is(scheme, host, port, path) -> None:
    url = f"{scheme}://{host}{port}{path}?model=m&max_tokens=4"
    assert redact_text(url) == url


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+engine.env.HF_TOKEN=hf_abc", f"+engine.env.HF_TOKEN={MASK}"),
        ("password: hunter2", f"password: {MASK}"),
        ('{"api_key": "sk-1", "max_tokens": 4}', f'{{"api_key": "{MASK}", "max_tokens": 4}}'),
        ("api_key_env: VLLM_API_KEY", "api_key_env: VLLM_API_KEY"),
        ("max_tokens=4 seed=7", "max_tokens=4 seed=7"),
        ("nats://h1:4222,nats://u:p@h2:99999", f"nats://h1:4222,nats://u:{MASK}@h2:99999"),
        # A help text names the variables and shows placeholders: it stays readable.
        ("set RAY_AUTH_MODE=token", "set RAY_AUTH_MODE=token"),
        ("give RAY_AUTH_TOKEN=<token> or", "give RAY_AUTH_TOKEN=<token> or"),
        ("HF_TOKEN=$HF_TOKEN HF_TOKEN=${HF_TOKEN}", "HF_TOKEN=$HF_TOKEN HF_TOKEN=${HF_TOKEN}"),
        ("RAY_AUTH_TOKEN=3440e2", f"RAY_AUTH_TOKEN={MASK}"),
    ],
)
def test_secret_named_assignments(text: str, expected: str) -> None:
    assert redact_text(text) == expected


def test_a_record_masks_secret_keys_whole_and_urls_inside_values() -> None:
    record = {
        "sink": {"url": "nats://TOKEN123@nats:4222"},
        "engine": {
            "env": {"HF_TOKEN": "hf_x", "OMP_NUM_THREADS": "2"},
            "api_key_env": "VLLM_API_KEY",
            "extra_body": {"api_key": "sk-1", "top_k": 20},
            "extra_engine_kwargs": {"hf_token": "hf_y"},
        },
        "max_tokens": 4,
        "x": ["http://a:b/c?d@h/p"],
    }
    assert redact(record) == {
        "sink": {"url": f"nats://{MASK}@nats:4222"},
        "engine": {
            "env": {"HF_TOKEN": MASK, "OMP_NUM_THREADS": "2"},
            "api_key_env": "VLLM_API_KEY",
            "extra_body": {"api_key": MASK, "top_k": 20},
            "extra_engine_kwargs": {"hf_token": MASK},
        },
        "max_tokens": 4,
        "x": [f"http://a:{MASK}@h/p"],
    }


@pytest.mark.parametrize(
    ("name", "secret_"),
    [
        ("HF_TOKEN", True),
        ("api_key", True),
        ("NATS_PASSWORD", True),
        ("max_tokens", False),
        ("api_key_env", False),
        ("keywords", False),
        ("prompt_tokens", False),
        ("RAY_AUTH_MODE", False),
        ("RAY_AUTH_TOKEN_PATH", False),
    ],
)
def test_secret_names(name: str, secret_: bool) -> None:
    assert is_secret_name(name) is secret_


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdefghijklmnop", "abcdefghijklmnop"),
        ("curl -H 'Authorization: Bearer abc123'", "abc123"),
        ("{'Authorization': 'Basic dXNlcjpwYXNzd29yZA=='}", "dXNlcjpwYXNzd29yZA"),
        ("HTTP 401: Bearer eyJhbGciOi.J9xQ rejected", "eyJhbGciOi"),
        ('{"key": "k-123", "auth": "a-456", "cookie": "c-789"}', "-"),
        ("password=ab'cd", "cd"),
        ('password: "a\\"bc"', "bc"),
        ("+engine.extra_body={api_key:sk-123456}", "123456"),
        ("error: sk-proj-abcdefghijklmnopqrstuv hf_abcdefghijklmnopqrstuvwx", "abcdefghij"),
        ("ghp_abcdefghijklmnopqrstuvwxyz0123 in the log", "abcdefghij"),
        ("https://x/cb#access_token=SECRET123&x=1", "SECRET123"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nQQAB\n-----END RSA PRIVATE KEY-----", "QQAB"),
    ],
)
def test_every_shape_of_secret_is_masked(text: str, secret: str) -> None:
    masked = redact_text(text)
    assert MASK in masked
    assert secret not in masked, masked


@pytest.mark.parametrize(
    "text",
    [
        "basic arithmetic",
        "Basic arithmetic tasks",
        "token overflow",
        "the Bearer of news",
        "KEY=VALUE",
    ],
)
def test_prose_that_looks_like_a_credential_is_left_alone(text: str) -> None:
    assert redact_text(text) == text
