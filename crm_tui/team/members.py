"""Who may see what in a team database: each person's (or sync worker's) login role, its
position and team, in `crm_members`, and the matching group role granted (row-level
security reads both; store/pg_schema.py). Run as the database's owner."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from psycopg import sql

from crm_tui.store.postgres import PostgresDatabase

POSITIONS = ("agent", "lead", "worker")


@dataclass(frozen=True)
class Member:
    role: str
    position: str
    user_id: str | None
    team: str | None

    def to_json(self) -> dict[str, str | None]:
        return asdict(self)


def add_member(db: PostgresDatabase, member: Member) -> None:
    """Record `member` and grant its group role (replacing an earlier position)."""
    if member.position not in POSITIONS:
        raise ValueError(f"position must be one of {', '.join(POSITIONS)}")
    if member.position != "worker" and not member.user_id:
        raise ValueError(f"an {member.position} needs --user-id: whose rows are theirs")
    if member.position != "agent" and not member.team:
        raise ValueError(f"a {member.position} needs --team: which team's rows they see")
    with db.transaction() as conn:
        if (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = ?", (member.role,)).fetchone()
            is None
        ):
            raise ValueError(
                f"no database role {member.role!r}: create it first"
                f" (CREATE ROLE \"{member.role}\" LOGIN PASSWORD '...')"
            )
        conn.execute(
            "INSERT INTO crm_members (role_name, position, user_id, team) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (role_name) DO UPDATE SET position = excluded.position,"
            " user_id = excluded.user_id, team = excluded.team",
            (member.role, member.position, member.user_id, member.team),
        )
        role = sql.Identifier(member.role)
        for position in POSITIONS:
            group = sql.Identifier(f"crm_{position}")
            verb = "GRANT {} TO {}" if position == member.position else "REVOKE {} FROM {}"
            conn.raw.execute(sql.SQL(verb).format(group, role))


def remove_member(db: PostgresDatabase, role: str) -> bool:
    with db.transaction() as conn:
        gone = conn.execute("DELETE FROM crm_members WHERE role_name = ?", (role,)).rowcount
        if gone:
            for position in POSITIONS:
                group = sql.Identifier(f"crm_{position}")
                revoke = sql.SQL("REVOKE {} FROM {}").format(group, sql.Identifier(role))
                conn.raw.execute(revoke)
    return bool(gone)


def list_members(db: PostgresDatabase) -> list[Member]:
    with db.reading() as conn:
        rows = conn.execute(
            "SELECT role_name, position, user_id, team FROM crm_members ORDER BY team, role_name"
        ).fetchall()
    return [Member(*row) for row in rows]
