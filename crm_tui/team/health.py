"""`crm-tui doctor` in team mode: the team database reached, its schema beside this
program's, and whose rows this connection's role may see."""

from __future__ import annotations

from crm_tui.config import CoreSettings
from crm_tui.store.errors import StoreError
from crm_tui.store.health import Check, failed, ok, warning
from crm_tui.store.opening import adopt_role_user
from crm_tui.store.schema_state import schema_state


def team_database_checks(settings: CoreSettings) -> list[Check]:
    url = settings.database_url
    assert url is not None
    try:
        state = schema_state(settings)
    except StoreError as exc:
        return [
            failed("team database", f"{exc.error}: {exc.details}", _fix_for(exc), exc.exit_code)
        ]
    checks = [ok("team database", f"{url.display}: reached")]
    if state.version > state.known:
        checks.append(
            failed(
                "schema",
                f"{state.version}, newer than this crm-tui's {state.known}",
                "upgrade crm-tui",
                3,
            )
        )
        return checks
    if state.version < state.known:
        checks.append(
            warning(
                "schema", f"{state.version} of {state.known}", "its owner runs `crm-tui db migrate`"
            )
        )
        return checks
    checks.append(ok("schema", f"{state.version} (current)"))
    checks.append(_visibility(settings))
    return checks


def _visibility(settings: CoreSettings) -> Check:
    """Whose rows the role may read: its own user's at least, or the app shows nothing."""
    from crm_tui.store.pg_connection import PgConnection
    from crm_tui.store.postgres import role_writes

    url = settings.database_url
    assert url is not None
    conn = PgConnection(url, "crm-tui doctor")
    try:
        writable = role_writes(conn)
        if writable is None:
            who = url.user or "this role"
            return ok("role", f"{who} is above the policies (owner, superuser): every user's rows")
        users = conn.execute("SELECT crm_users(false)").fetchone()[0] or []
        adopt_role_user(settings, lambda: writable)  # as the app does
    except StoreError as exc:
        return warning("role", exc.details, "make the role a member: crm-tui db member add")
    finally:
        conn.close()
    if settings.user_id not in users:
        return failed(
            "role",
            f"{url.user or 'this role'} may not read {settings.user_id}'s rows",
            "its owner runs `crm-tui db member add ROLE --user-id USER ...`, or set CRM_USER_ID",
            3,
        )
    return ok(
        "role", f"{url.user}: reads {len(users)} user(s)' rows, {settings.user_id}'s among them"
    )


def _fix_for(exc: StoreError) -> str:
    if exc.exit_code == 3:
        return "check the role and password in CRM_DATABASE_URL"
    return "check the host, port and sslmode in CRM_DATABASE_URL, and that the server runs"
