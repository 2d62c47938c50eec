"""The contract stage's scenario (issue 10): every operation of the API, called as the right
role through a client that openapi-python-client generated from the server's own
/openapi.json, each answer parsed into the generated models.

Run by `.ci/run` (stage `contract`) with the generated package `employee_api_client` on
PYTHONPATH, against a fresh server whose administrator is `admin` with the password in the
environment variable named by --admin-password-env. It stops at the first mismatch with a
non-zero exit: a status the step did not expect (or the document does not list: the client
raises on undocumented statuses), a body the generated models cannot parse, or a documented
field missing or an undocumented one present in any answer.

Where the generated client cannot express a request or read a header (the CSV import body,
`Link`, `ETag`, `X-Total-Count`), the step uses the generated client's own httpx client or the
headers of the generated `Response`, and says so.
"""

import argparse
import datetime
import json
import os
import secrets
import sys
import urllib.parse
import uuid

from employee_api_client import AuthenticatedClient, Client
from employee_api_client.api.api_keys import create_api_key, list_api_keys, revoke_api_key
from employee_api_client.api.audit import audit_trail
from employee_api_client.api.authentication import logout, register, revoke, token
from employee_api_client.api.employees import (
    create_employee,
    delete_employee,
    deleted_employees,
    employee_history,
    erase_employee,
    export_employees,
    get_employee,
    import_employees,
    list_employees,
    restore_employee,
    update_employee,
)
from employee_api_client.api.health import healthz, readyz, root
from employee_api_client.api.users import (
    change_password,
    delete_user,
    end_session,
    get_user,
    list_users,
    me,
    reset_password,
    sessions,
    update_user,
)
from employee_api_client.models import (
    ActionName,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyRead,
    AuditEntryRead,
    AuditEntryReadChanges,
    AuditTrailAction,
    DeletedEmployeeRead,
    EmployeeCreate,
    EmployeeRead,
    EmployeeUpdate,
    ErrorDetail,
    ExportEmployeesFormat,
    ImportEmployeesOnConflict,
    ImportReport,
    ListEmployeesOrder,
    ListEmployeesSortBy,
    Message,
    OAuthError,
    PasswordChange,
    PasswordReset,
    RevokeRequest,
    ScopeName,
    SessionRead,
    Token,
    TokenRequest,
    UserCreate,
    UserRead,
    UserUpdate,
    ValidationErrorBody,
)
from employee_api_client.types import UNSET

# Models whose extra keys are the data (free-form objects); every other model must come back
# with no key the document does not name.
FREE_FORM = (AuditEntryReadChanges,)

STEPS = 0
OPERATIONS = set()


class Mismatch(Exception):
    pass


def check(condition, what):
    if not condition:
        raise Mismatch(what)


def exact(value, where):
    """No undocumented key anywhere in a parsed answer (the models keep them aside)."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            exact(item, "%s[%d]" % (where, i))
        return
    extra = getattr(value, "additional_properties", None)
    if extra is None or isinstance(value, FREE_FORM):
        return
    check(not extra, "%s: undocumented fields %s in %s" % (where, sorted(extra), type(value).__name__))
    for name in getattr(type(value), "__attrs_attrs__", ()):
        if name.name != "additional_properties":
            exact(getattr(value, name.name), "%s.%s" % (where, name.name))


def call(module, status, model, **kwargs):
    """One generated operation: the status must be `status` and the body a `model` (a type, a
    `list` of one type as `[T]`, or None for no body)."""
    global STEPS
    name = module.__name__.rsplit(".", 1)[1]
    OPERATIONS.add(name)
    response = module.sync_detailed(**kwargs)
    STEPS += 1
    label = "%s -> %s" % (name, int(response.status_code))
    if int(response.status_code) != status:
        raise Mismatch("%s, expected %s: %s" % (label, status, response.content[:300]))
    parsed = response.parsed
    if isinstance(model, list):
        check(isinstance(parsed, list), "%s: expected a list, got %r" % (label, type(parsed)))
        check(all(isinstance(p, model[0]) for p in parsed), "%s: expected items of %s" % (label, model[0].__name__))
    elif model is None:
        check(not response.content, "%s: expected no body, got %r" % (label, response.content[:100]))
    else:
        check(isinstance(parsed, model), "%s: expected %s, got %r" % (label, model.__name__, type(parsed)))
    exact(parsed, label)
    print("contract: %-22s %s" % (name, int(response.status_code)))
    return response


def next_link(response):
    """The `rel="next"` target of an RFC 8288 `Link` header (not modelled by the generator)."""
    value = response.headers.get("link")
    if not value:
        return None
    target, _, params = value.partition(";")
    check('rel="next"' in params, "Link without rel=next: %r" % value)
    url = urllib.parse.urlsplit(target.strip().strip("<>"))
    return url.path, dict(urllib.parse.parse_qsl(url.query))


def login(anon, username, password, scope=UNSET):
    body = TokenRequest(grant_type="password", username=username, password=password, scope=scope)
    issued = call(token, 200, Token, client=anon, body=body).parsed
    check(issued.token_type.lower() == "bearer", "token_type is %r" % issued.token_type)
    return issued


def as_bearer(base, access_token):
    return AuthenticatedClient(base_url=base, token=access_token, raise_on_unexpected_status=True)


def employee(emp_id, name, city, country, dob):
    return EmployeeCreate(emp_id=emp_id, emp_name=name, city=city, country=country, emp_dob=datetime.date.fromisoformat(dob))


PEOPLE = [
    (7001, "Ada Lovelace", "London", "United Kingdom", "1985-12-10"),
    (7002, "Grace Hopper", "Arlington", "United States", "1976-12-09"),
    (7003, "Karl Weiß", "Straßburg", "France", "1990-01-31"),
    (7004, "Alan Turing", "Wilmslow", "United Kingdom", "1912-06-23"),
    (7005, "Edsger Dijkstra", "Nuenen", "Netherlands", "1930-05-11"),
]


def deref(doc, node):
    while isinstance(node, dict) and "$ref" in node:
        target = doc
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def nullable_anywhere(doc, schema, seen=()):
    """Whether `null` is allowed anywhere in a request-side schema."""
    schema = deref(doc, schema)
    if not isinstance(schema, dict) or id(schema) in seen:
        return False
    seen = seen + (id(schema),)
    types = schema.get("type")
    if types == "null" or (isinstance(types, list) and "null" in types):
        return True
    children = list(schema.get("properties", {}).values())
    children += [schema[k] for k in ("items", "additionalProperties") if isinstance(schema.get(k), dict)]
    children += [c for k in ("oneOf", "anyOf", "allOf") for c in schema.get(k, [])]
    return any(nullable_anywhere(doc, c, seen) for c in children)


def lint_document(doc):
    """What issue 10 asks of the document beyond validity, checked on the document served:
    request bodies and parameters never allow null, JSON object bodies refuse unknown fields,
    and every request body and every error answer with a body has an example."""
    problems = []
    for path, item in doc["paths"].items():
        for method, op in item.items():
            label = "%s %s" % (method.upper(), path)
            for param in op.get("parameters", []):
                if nullable_anywhere(doc, param.get("schema", {})):
                    problems.append("%s: parameter %s allows null" % (label, param["name"]))
            for media_type, media in op.get("requestBody", {}).get("content", {}).items():
                schema = deref(doc, media.get("schema", {}))
                if "example" not in media and "examples" not in media and "example" not in schema:
                    problems.append("%s: %s body has no example" % (label, media_type))
                if nullable_anywhere(doc, schema):
                    problems.append("%s: %s body allows null" % (label, media_type))
                if media_type == "application/json":
                    objects = [schema] if schema.get("type") == "object" else [deref(doc, schema.get("items", {}))]
                    for obj in objects:
                        if obj.get("type") == "object" and obj.get("additionalProperties") is not False:
                            problems.append("%s: JSON body accepts unknown fields" % label)
            for status, response in op["responses"].items():
                response = deref(doc, response)
                for media_type, media in response.get("content", {}).items():
                    schema = deref(doc, media.get("schema", {}))
                    if int(status) >= 400 and "example" not in media and "examples" not in media and "example" not in schema:
                        problems.append("%s: %s answer has no example" % (label, status))
    return problems


def scenario(base, admin_password):
    anon = Client(base_url=base, raise_on_unexpected_status=True)

    # The document itself, as served.
    problems = lint_document(anon.get_httpx_client().get("/openapi.json").json())
    check(not problems, "the document:\n  " + "\n  ".join(problems))
    print("contract: the document: no nullable input, JSON bodies closed, examples present")

    # Health.
    call(root, 200, Message, client=anon)
    call(healthz, 200, type(None), client=anon)
    call(readyz, 200, type(None), client=anon)

    # Accounts: register, taken name, logins, a wrong password, refresh.
    alice_password = "river-" + secrets.token_urlsafe(12)
    alice = call(register, 201, UserRead, client=anon, body=UserCreate(username="alice", password=alice_password)).parsed
    check(alice.username == "alice" and not alice.is_admin and alice.is_active, "registered %r" % alice)
    call(register, 409, ErrorDetail, client=anon, body=UserCreate(username="ALICE", password=alice_password))
    call(register, 422, ValidationErrorBody, client=anon, body=UserCreate(username="bob", password="password"))
    call(token, 401, ErrorDetail, client=anon, body=TokenRequest(username="alice", password="not-" + alice_password))
    admin = as_bearer(base, login(anon, "admin", admin_password).access_token)
    admin_user = call(me, 200, UserRead, client=admin).parsed
    check(admin_user.is_admin, "admin is not an administrator")
    alice_login = login(anon, "alice", alice_password, scope="employees:read")
    check(alice_login.scope == "employees:read", "scope granted: %r" % alice_login.scope)
    refreshed = call(token, 200, Token, client=anon, body=TokenRequest(grant_type="refresh_token", refresh_token=alice_login.refresh_token)).parsed
    call(token, 400, OAuthError, client=anon, body=TokenRequest(grant_type="refresh_token", refresh_token="not-a-token"))
    alice_client = as_bearer(base, refreshed.access_token)
    check(call(me, 200, UserRead, client=alice_client).parsed.id == alice.id, "me is not alice")
    call(me, 401, ErrorDetail, client=anon)

    # Employees: create (ETag and Location headers), conflicts, invalid input, reads.
    etags = {}
    for person in PEOPLE:
        created = call(create_employee, 201, EmployeeRead, client=admin, body=employee(*person))
        check(created.parsed.emp_id == person[0] and created.parsed.emp_dob.isoformat() == person[4], "created %r" % created.parsed)
        check(created.headers.get("location") == "/employees/%d" % person[0], "Location %r" % created.headers.get("location"))
        etags[person[0]] = created.headers["etag"]
    call(create_employee, 409, ErrorDetail, client=admin, body=employee(*PEOPLE[0]))
    call(create_employee, 422, ValidationErrorBody, client=admin, body=employee(7999, "Future Person", "Oslo", "Norway", "2999-01-01"))
    call(create_employee, 403, ErrorDetail, client=alice_client, body=employee(7998, "Not Allowed", "Oslo", "Norway", "1990-01-01"))
    got = call(get_employee, 200, EmployeeRead, client=alice_client, emp_id=7001)
    check(got.headers["etag"] == etags[7001], "ETag of a read differs from the create's")
    call(get_employee, 304, type(None), client=alice_client, emp_id=7001, if_none_match=etags[7001])
    call(get_employee, 404, ErrorDetail, client=alice_client, emp_id=7999)

    # Change: with the ETag read, then a stale one.
    changed = call(update_employee, 200, EmployeeRead, client=admin, emp_id=7001,
                   body=EmployeeUpdate(city="Zürich", country="Switzerland"), if_match=etags[7001])
    check(changed.parsed.city == "Zürich", "changed %r" % changed.parsed)
    call(update_employee, 412, ErrorDetail, client=admin, emp_id=7001, body=EmployeeUpdate(city="Bern"), if_match=etags[7001])
    etags[7001] = changed.headers["etag"]

    # The list: filters (caseless), sort, the total, a conditional read.
    listed = call(list_employees, 200, [EmployeeRead], client=alice_client, country="UNITED", sort_by=ListEmployeesSortBy.EMP_NAME, order=ListEmployeesOrder.DESC)
    check([e.emp_name for e in listed.parsed] == ["Grace Hopper", "Alan Turing"], "filtered list %r" % [e.emp_name for e in listed.parsed])
    check(listed.headers.get("x-total-count") == "2", "X-Total-Count %r" % listed.headers.get("x-total-count"))
    call(list_employees, 200, [EmployeeRead], client=alice_client, city="STRASSB")
    call(list_employees, 304, type(None), client=alice_client, if_none_match=listed.headers["etag"])
    call(list_employees, 422, ValidationErrorBody, client=alice_client, limit=1001)

    # Cursor paging: follow `Link: rel="next"` to the end. The generated client sends its
    # documented defaults (offset=0, limit) with the cursor, which the server must accept.
    everyone = call(list_employees, 200, [EmployeeRead], client=alice_client, sort_by=ListEmployeesSortBy.CITY).parsed
    seen, page, pages = [], call(list_employees, 200, [EmployeeRead], client=alice_client, limit=2, sort_by=ListEmployeesSortBy.CITY), 1
    while True:
        seen += [e.emp_id for e in page.parsed]
        link = next_link(page)
        if link is None:
            break
        path, query = link
        check(path == "/employees/" and set(query) == {"cursor", "limit"}, "next link %r" % (link,))
        page = call(list_employees, 200, [EmployeeRead], client=alice_client, cursor=query["cursor"], limit=int(query["limit"]), offset=0)
        pages += 1
    check(seen == [e.emp_id for e in everyone], "cursor pages %r differ from the whole list %r" % (seen, [e.emp_id for e in everyone]))
    check(pages == 3, "expected 3 pages of 2, got %d" % pages)
    call(list_employees, 422, ValidationErrorBody, client=alice_client, cursor=query["cursor"], offset=1)

    # Import: JSON through the generated client; CSV through its httpx client (the generator
    # has no text/csv bodies), parsed with the generated ImportReport.
    rows = [employee(7101, "Barbara Liskov", "Boston", "United States", "1939-11-07"),
            employee(7001, "Ada King", "London", "United Kingdom", "1985-12-10")]
    report = call(import_employees, 200, ImportReport, client=admin, body=rows, on_conflict=ImportEmployeesOnConflict.SKIP, dry_run=True).parsed
    check((report.rows, report.written, report.skipped, report.dry_run) == (2, 1, 1, True), "dry run %r" % report)
    call(import_employees, 409, ErrorDetail, client=admin, body=rows)
    report = call(import_employees, 200, ImportReport, client=admin, body=rows, on_conflict=ImportEmployeesOnConflict.SKIP).parsed
    check(report.written == 1 and not report.dry_run, "import %r" % report)
    csv_body = "emp_id,emp_name,city,country,emp_dob\r\n7102,Frances Allen,Peru,United States,1932-08-04\r\n"
    raw = admin.get_httpx_client().post("/employees/import", content=csv_body.encode(), headers={"Content-Type": "text/csv"})
    OPERATIONS.add("import_employees (CSV)")
    check(raw.status_code == 200, "CSV import -> %s %s" % (raw.status_code, raw.text[:300]))
    report = ImportReport.from_dict(raw.json())
    exact(report, "CSV import")
    check(report.written == 1, "CSV import %r" % report)
    raw = admin.get_httpx_client().post("/employees/import", content=b"emp_id,name\r\n1,x\r\n", headers={"Content-Type": "text/csv"})
    check(raw.status_code == 422, "bad CSV header -> %s" % raw.status_code)
    exact(ValidationErrorBody.from_dict(raw.json()), "bad CSV")
    print("contract: import_employees (CSV) 200, 422")

    # Export: CSV and NDJSON, as text.
    exported = call(export_employees, 200, str, client=admin, format_=ExportEmployeesFormat.CSV).parsed
    check(exported.splitlines()[0] == "emp_id,emp_name,city,country,emp_dob" and "Frances Allen" in exported, "CSV export %r" % exported[:200])
    ndjson = call(export_employees, 200, str, client=admin, format_=ExportEmployeesFormat.NDJSON, city="boston").parsed
    exact(EmployeeRead.from_dict(json.loads(ndjson.splitlines()[0])), "NDJSON line")
    call(export_employees, 403, ErrorDetail, client=alice_client)

    # Delete, the archive (paged by its Link), restore, erase, history.
    call(delete_employee, 412, ErrorDetail, client=admin, emp_id=7002, if_match='"0"')
    call(delete_employee, 204, None, client=admin, emp_id=7002, if_match=etags[7002])
    call(delete_employee, 204, None, client=admin, emp_id=7003)
    call(get_employee, 404, ErrorDetail, client=admin, emp_id=7002)
    archived, page = [], call(deleted_employees, 200, [DeletedEmployeeRead], client=admin, limit=1)
    while True:
        archived += [d.emp_id for d in page.parsed]
        link = next_link(page)
        if link is None:
            break
        page = call(deleted_employees, 200, [DeletedEmployeeRead], client=admin, after=link[1]["after"], limit=int(link[1]["limit"]))
    check(archived == [7002, 7003], "archive %r" % archived)
    restored = call(restore_employee, 200, EmployeeRead, client=admin, emp_id=7002).parsed
    check(restored.emp_name == "Grace Hopper", "restored %r" % restored)
    # A deleted employee whose emp_id was taken again cannot come back.
    call(delete_employee, 204, None, client=admin, emp_id=7005)
    call(create_employee, 201, EmployeeRead, client=admin, body=employee(*PEOPLE[4]))
    call(restore_employee, 409, ErrorDetail, client=admin, emp_id=7005)
    call(erase_employee, 204, None, client=admin, emp_id=7003)
    call(restore_employee, 404, ErrorDetail, client=admin, emp_id=7003)
    call(erase_employee, 404, ErrorDetail, client=admin, emp_id=7003)
    history = call(employee_history, 200, [AuditEntryRead], client=admin, emp_id=7001).parsed
    check([h.action for h in history][:2] == [ActionName.EMPLOYEE_CREATE, ActionName.EMPLOYEE_UPDATE], "history %r" % [h.action for h in history])
    check(history[1].changes["city"] == {"from": "London", "to": "Zürich"}, "changes %r" % history[1].changes.additional_properties)
    call(employee_history, 403, ErrorDetail, client=alice_client, emp_id=7001)

    # The audit trail: pages of 5 followed to the end, then a filter and a time window.
    trail, page = [], call(audit_trail, 200, [AuditEntryRead], client=admin, limit=5)
    while True:
        trail += page.parsed
        link = next_link(page)
        if link is None:
            break
        check(link[0] == "/audit", "audit next link %r" % (link,))
        page = call(audit_trail, 200, [AuditEntryRead], client=admin, after=int(link[1]["after"]), limit=int(link[1]["limit"]))
    seqs = [e.seq for e in trail]
    check(seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len(seqs) > 10, "audit seqs %r" % seqs)
    updates = call(audit_trail, 200, [AuditEntryRead], client=admin, action=AuditTrailAction.EMPLOYEE_UPDATE,
                   since=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)).parsed
    check([u.target.id for u in updates] == [7001], "update entries %r" % [u.target.id for u in updates])
    call(audit_trail, 403, ErrorDetail, client=alice_client)

    # API keys: create, list, use (as a bearer token and as X-API-Key), revoke.
    created = call(create_api_key, 201, ApiKeyCreated, client=admin, body=ApiKeyCreate(
        name="contract scenario", scopes=[ScopeName.EMPLOYEESREAD],
        expires_at=datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1))).parsed
    check(created.key.startswith(created.prefix) and created.scopes == [ScopeName.EMPLOYEESREAD], "key %r" % created)
    keys = call(list_api_keys, 200, [ApiKeyRead], client=admin).parsed
    check([k.id for k in keys] == [created.id], "keys %r" % keys)
    by_bearer = as_bearer(base, created.key)
    by_header = AuthenticatedClient(base_url=base, token=created.key, prefix="", auth_header_name="X-API-Key", raise_on_unexpected_status=True)
    call(list_employees, 200, [EmployeeRead], client=by_bearer)
    call(get_employee, 200, EmployeeRead, client=by_header, emp_id=7001)
    call(create_employee, 403, ErrorDetail, client=by_header, body=employee(7997, "No Scope", "Oslo", "Norway", "1990-01-01"))
    call(list_api_keys, 403, ErrorDetail, client=by_bearer)
    call(revoke_api_key, 204, None, client=admin, id=created.id)
    call(revoke_api_key, 404, ErrorDetail, client=admin, id=created.id)
    call(list_employees, 401, ErrorDetail, client=by_header)

    # Account administration: list, read, disable (its tokens stop), enable, reset.
    found = call(list_users, 200, [UserRead], client=admin, username="ALI", is_active=True).parsed
    check([u.id for u in found] == [alice.id], "users %r" % found)
    call(get_user, 200, UserRead, client=admin, id=alice.id)
    call(get_user, 404, ErrorDetail, client=admin, id=999999)
    check(not call(update_user, 200, UserRead, client=admin, id=alice.id, body=UserUpdate(is_active=False)).parsed.is_active, "not disabled")
    call(me, 401, ErrorDetail, client=alice_client)
    call(update_user, 200, UserRead, client=admin, id=alice.id, body=UserUpdate(is_active=True))
    call(update_user, 409, ErrorDetail, client=admin, id=admin_user.id, body=UserUpdate(is_admin=False))
    alice_password = "meadow-" + secrets.token_urlsafe(12)
    call(reset_password, 204, None, client=admin, id=alice.id, body=PasswordReset(new_password=alice_password))
    call(list_users, 403, ErrorDetail, client=as_bearer(base, login(anon, "alice", alice_password).access_token))

    # Sessions: two logins, list them, end the other one, change the password, log out, revoke.
    first = login(anon, "alice", alice_password)
    second = login(anon, "alice", alice_password)
    alice_client = as_bearer(base, second.access_token)
    live = call(sessions, 200, [SessionRead], client=alice_client).parsed
    check(sum(s.current for s in live) == 1 and len(live) >= 2, "sessions %r" % live)
    other = next(s for s in live if not s.current)
    call(end_session, 204, None, client=alice_client, id=other.id)
    call(end_session, 404, ErrorDetail, client=alice_client, id=uuid.uuid4())
    new_password = "harbour-" + secrets.token_urlsafe(12)
    call(change_password, 422, ValidationErrorBody, client=alice_client, body=PasswordChange(current_password="wrong-" + alice_password, new_password=new_password))
    call(change_password, 204, None, client=alice_client, body=PasswordChange(current_password=alice_password, new_password=new_password))
    call(me, 200, UserRead, client=alice_client)
    call(logout, 422, ValidationErrorBody, client=alice_client, scope="everyone")
    call(logout, 204, None, client=alice_client, scope="others")
    call(logout, 204, None, client=alice_client)
    call(me, 401, ErrorDetail, client=alice_client)
    third = login(anon, "alice", new_password)
    call(revoke, 200, None, client=anon, body=RevokeRequest(token=third.refresh_token, token_type_hint="refresh_token"))
    call(me, 401, ErrorDetail, client=as_bearer(base, third.access_token))
    call(revoke, 422, ValidationErrorBody, client=anon, body=RevokeRequest(token=""))
    call(logout, 204, None, client=admin, scope="global")
    call(me, 401, ErrorDetail, client=admin)
    check(first.access_token != second.access_token, "two logins gave one token")

    # Delete the account (as a fresh admin session: the last one ended above).
    admin = as_bearer(base, login(anon, "admin", admin_password).access_token)
    call(delete_user, 204, None, client=admin, id=alice.id)
    call(delete_user, 404, ErrorDetail, client=admin, id=alice.id)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server's base URL")
    parser.add_argument("--admin-password-env", required=True, help="the variable holding admin's password")
    args = parser.parse_args()
    try:
        scenario(args.base, os.environ[args.admin_password_env])
    except Mismatch as e:
        sys.exit("contract: MISMATCH after %d calls: %s" % (STEPS, e))
    # Every operation module the generator wrote (the imports above fail on a missing one).
    generated = {m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("employee_api_client.api.") and m.count(".") == 3}
    untested = sorted(generated - OPERATIONS)
    if untested:
        sys.exit("contract: operations the scenario never called: %s" % ", ".join(untested))
    print("contract: %d calls, %d operations, every answer parsed by the generated models" % (STEPS, len(generated)))


if __name__ == "__main__":
    main()
