"""Schemathesis hooks for tests/api/schemathesis.rs: credentials for the authenticated operations,
and the two kinds of reported failure that are not the server's (each dropped narrowly, and
counted as "dropped by filter_failure" in schemathesis's summary).

Read from the environment (set by the test):
  AUTHPOOL_BASE_URL             the server under test
  AUTHPOOL_FUZZ_LOGIN           username of a confirmed account. Its username never changes
                                through the API (its email may, by PUT /api/account).
  AUTHPOOL_FUZZ_LOGOUT_LOGIN    username of a second confirmed account, for the logout operations
  AUTHPOOL_FUZZ_PASSWORD        the password of both
  AUTHPOOL_FUZZ_INTROSPECTION   the introspection secret the server was started with
"""

import json
import os
import threading
import urllib.request

import schemathesis
from schemathesis.core.failures import AcceptedNegativeData
from schemathesis.core.jsonschema import make_validator
from schemathesis.core.parameters import ParameterLocation
from schemathesis.openapi.checks import UndefinedStatusCode
from schemathesis.specs.openapi.checks import (
    _get_openapi_schema,
    _has_other_negated_location,
    _sent_form_fields,
)

BASE_URL = os.environ["AUTHPOOL_BASE_URL"]
LOGIN = os.environ["AUTHPOOL_FUZZ_LOGIN"]
LOGOUT_LOGIN = os.environ["AUTHPOOL_FUZZ_LOGOUT_LOGIN"]
PASSWORD = os.environ["AUTHPOOL_FUZZ_PASSWORD"]
INTROSPECTION_SECRET = os.environ["AUTHPOOL_FUZZ_INTROSPECTION"]

LOGOUT_OPERATIONS = ("logout", "compat_logout")


def sign_in(login):
    """An access token of a new session of `login`."""
    request = urllib.request.Request(
        BASE_URL + "/api/login",
        data=json.dumps({"email": login, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)["access_token"]


_token_lock = threading.Lock()
_token = None


def main_token():
    """One session of the main account for the whole run, signed in on first use.

    Nothing the fuzzer can send ends it: logouts go to the other account, and a password change
    or reset needs the password or a mailed code. Signing in once also keeps clear of the
    sign-in lockout: the stateful phase feeds the account's email and username, read from
    GET /api/account, into POST /api/login with made-up passwords.
    """
    global _token
    with _token_lock:
        if _token is None:
            _token = sign_in(LOGIN)
        return _token


# No caching by schemathesis (`refresh_interval=None`): `get` runs for every case and decides.
@schemathesis.auth(refresh_interval=None)
class AuthpoolAuth:
    """The credentials each operation's security requirement names: the introspection secret
    for introspection; for the logout operations a fresh session of the second account (a
    fuzzed `everywhere: true` ends all of that account's sessions); the main account's session
    for everything else that needs a bearer token."""

    def get(self, case, context):
        raw = case.operation.definition.raw
        schemes = {name for requirement in raw.get("security", []) for name in requirement}
        if "IntrospectionSecret" in schemes:
            return INTROSPECTION_SECRET
        if "BearerAuth" in schemes:
            if raw.get("operationId") in LOGOUT_OPERATIONS:
                return sign_in(LOGOUT_LOGIN)
            return main_token()
        return None

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops (returns False for) exactly two kinds of failure; keeps every other.

    1. "Schema-violating request accepted" where the body the server read is valid. Form and
       multipart fields are converted by the JSON schema's types, as the OpenAPI document says
       (booleans also as 1/0, on/off, yes/no; a blank non-text field is not given; object fields
       are JSON strings), so `is_active=0` is a valid `false`. And the coverage phase labels some
       valid JSON bodies invalid (`{"email": "...", "errors": {}}` as "errors -> Missing
       required property: email").
    2. 405 "Undocumented status code" for a request whose path parameter is empty: schemathesis
       (its issue #2790) fills a path parameter from a link whose source response lacked the
       value, despite `minLength: 1`, and so sends `PUT /api/api-tokens/`, which is the
       collection's URL (trailing slashes are ignored), where PUT is rightly 405.
    """
    if isinstance(failure, AcceptedNegativeData) and valid_as_read(response, case):
        return False
    if (
        isinstance(failure, UndefinedStatusCode)
        and response.status_code == 405
        and "" in (case.path_parameters or {}).values()
    ):
        return False
    return True


FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
TRUE = ("true", "1", "on", "yes")
FALSE = ("false", "0", "off", "no")


def property_type(schema, name):
    """The JSON type the server converts a form field to (as src/api/body.rs does)."""
    prop = (schema.get("properties") or {}).get(name)
    if not isinstance(prop, dict):
        return None
    # Schemathesis turns OpenAPI's `nullable: true` into `anyOf: [<the schema>, {"type": "null"}]`.
    options = [p for p in prop.get("anyOf", [prop]) if isinstance(p, dict) and p.get("type") != "null"]
    prop = options[0] if len(options) == 1 else prop
    if isinstance(prop.get("type"), str):
        return prop["type"]
    if "$ref" in prop or "allOf" in prop:
        return "object"
    return None


def read_form(schema, fields):
    """The JSON object the server makes of form fields, or None where it refuses the form
    itself (a repeated field, a file or typed part)."""
    body = {}
    for name, texts in fields.items():
        if len(texts) != 1 or texts[0] is None:
            return None
        text = texts[0]
        kind = property_type(schema, name)
        if kind in (None, "string"):
            body[name] = text
        elif text == "":
            continue
        elif kind == "boolean" and text.lower() in TRUE + FALSE:
            body[name] = text.lower() in TRUE
        else:
            try:
                body[name] = json.loads(text)
            except ValueError:
                body[name] = text
    return body


def valid_as_read(response, case):
    """Whether the case's body, as the server read it, is valid against the operation's JSON
    schema, when the body is the only part of the case generated invalid."""
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.BODY):
        return False
    if _has_other_negated_location(case, ParameterLocation.BODY):
        return False
    json_body = case.operation.get_body_for_media_type("application/json")
    if json_body is None:
        return False
    schema = json_body.optimized_schema
    media_type = (case.media_type or "").split(";")[0].strip().lower()
    if media_type == "application/json":
        body = case.body
    elif media_type in FORM_TYPES:
        fields = _sent_form_fields(response, media_type)
        body = None if fields is None else read_form(schema, fields)
    else:
        return False
    if not isinstance(body, dict):
        return False
    try:
        validator = make_validator(schema, _get_openapi_schema(case).adapter.jsonschema_validator_cls)
        return validator.is_valid(body)
    except Exception:
        return False
